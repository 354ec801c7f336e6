"""The ROS 2 layer: the reasoning node, its parameters, message conversion and the client."""
