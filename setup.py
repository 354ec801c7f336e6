"""`pip install .`: the ROS-free core and the `cosmos-reason` command line.

The ROS 2 package itself (interfaces, node, launch files) is built by colcon through
CMakeLists.txt; this file is not used by colcon.
"""

from setuptools import find_packages, setup

setup(
    name='cosmos_reason_ros',
    version='0.1.0',
    description='Physical reasoning for robots with NVIDIA Cosmos-Reason: the ROS-free core',
    license='Apache-2.0',
    python_requires='>=3.10',
    packages=find_packages(include=['cosmos_reason_ros', 'cosmos_reason_ros.core',
                                    'cosmos_reason_ros.core.*', 'cosmos_reason_ros.demo']),
    install_requires=[
        'numpy>=1.26,<3',
        'opencv-python-headless>=4.8,<6',
        'pyyaml>=6',
        'rosbags>=0.10.9,<0.12',
        'rosbags-image>=0.10,<0.11',
        'av>=12,<19',
    ],
    extras_require={
        'model': ['torch>=2.6,<2.16', 'torchvision>=0.21,<0.30', 'transformers>=4.57,<5.24',
                  'accelerate>=1.0,<2', 'xgrammar>=0.2.9,<0.3'],
        'test': ['pytest>=8', 'pytest-timeout>=2.3'],
    },
    entry_points={'console_scripts': ['cosmos-reason=cosmos_reason_ros.cli:main']},
)
