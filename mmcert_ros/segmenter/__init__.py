"""The segmenter without ROS: everything the ``mmcert_segmenter`` node does that is not ROS
wiring, shared with the offline tools.

- Settings: the parameter table and its validator (:mod:`.parameters`,
  :class:`~mmcert_ros.segmenter.parameters.NodeSettings`), the one loader of settings files
  (:mod:`.settings`) and the source presets (:mod:`.presets`).
- Inputs: the codec of ROS-shaped image messages (:mod:`.codec`, :mod:`.message_fields`),
  the one Pair -> Frame decoder (:mod:`.pair_to_frame`), stamp pairing for the worker
  (:mod:`.input_pairing`) and the RGB-only watch (:mod:`.depth_watch`).
- Engines: the one factory (:mod:`.engines`) and their swap across parameter changes
  (:mod:`.engine_swap`).
- Outputs: the output images and overlay (:mod:`.outputs`, :mod:`.overlay`), the colour views
  (:mod:`.views`) and the labelled LiDAR points (:mod:`.labelled_points`).

Nothing here imports the ROS client library or a ROS message package.
"""
