"""ament_python build of mmcert_ros; also installs with pip into a plain virtual environment."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = 'mmcert_ros'

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*']),
    package_data={PACKAGE: ['models/weights/*.pt']},
    data_files=[
        ('share/ament_index/resource_index/packages', [f'resource/{PACKAGE}']),
        (f'share/{PACKAGE}', ['package.xml']),
        (f'share/{PACKAGE}/launch', glob('launch/*.launch.py')),
        (f'share/{PACKAGE}/config', glob('config/*.yaml') + glob('config/*.rviz')
         + glob('config/*.json') + glob('config/*.xml')),
    ],
    install_requires=[
        'setuptools',
        'numpy',
        'numba',
        'scipy',
        'pyyaml',
        'opencv-python-headless',
        'torch>=2.1',
        'rosbags>=0.10',
        'matplotlib',
        'tqdm',
    ],
    extras_require={'test': ['pytest', 'hypothesis', 'flake8', 'statsmodels', 'mcap',
                             'mcap-ros2-support', 'ray>=2.9'],
                    # fleet evaluation on Ray (mmcert-ros evaluate --workers / --ray-address)
                    'evaluation': ['ray>=2.9'],
                    # model.backend openvino (fp32, bf16; int8 quantizes with NNCF)
                    'openvino': ['onnx', 'openvino', 'nncf>=3.4'],
                    # model.backend onnxruntime
                    'onnxruntime': ['onnx', 'onnxruntime']},
    zip_safe=True,
    maintainer='mmcert_ros maintainers',
    maintainer_email='maintainers@mmcert-ros.dev',
    description='Certified-robust RGB-D road segmentation (MMCert) for ROS 2.',
    license='Apache-2.0',
    python_requires='>=3.10',
    entry_points={
        'console_scripts': [
            'mmcert-ros = mmcert_ros.tools.cli:main',
            'segmenter = mmcert_ros.ros.segmenter_node:main',
            'sim_drive = mmcert_ros.ros.sim_drive_node:main',
        ],
    },
)
