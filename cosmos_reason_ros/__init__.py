"""Physical reasoning for robots with NVIDIA Cosmos-Reason models, served as a ROS 2 action."""

# colcon installs the generated msg/ and action/ subpackages beside these sources; merge every
# copy of the package on sys.path so a source checkout earlier on the path does not hide them.
__path__ = __import__('pkgutil').extend_path(__path__, __name__)

__version__ = '0.1.0'
