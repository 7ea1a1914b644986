"""What the test modules share and import from here alone (no test module imports another):
the ROS harness (nodes in subprocesses, a real rclpy client), the colcon / ``ros2`` CLI
tools, the LiDAR stand-in process and the inputs of the evaluation and fleet tests."""
