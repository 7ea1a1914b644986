"""config/mmcert.rviz and config/foxglove_layout.json: valid files that show only topics the
segmenter publishes, with the points coloured in the palette of mmcert/view/segmentation."""
import ast
import json
from pathlib import Path

import yaml

from mmcert_ros.data.road import ROAD_CLASS
from mmcert_ros.segmenter.labelled_points import LABELLED_FIELDS, LABELLED_POINTS
from mmcert_ros.segmenter.outputs import (FRAME_TIMES, L2_CERTIFICATION, OUTPUT_TOPICS, OVERLAY,
                                          STATUS)
from mmcert_ros.segmenter.views import CLASS_COLOURS, VIEW_TOPICS

ROOT = Path(__file__).resolve().parents[1]
DIAGNOSTICS = '/diagnostics'
#: what a viewer shows: the overlay, the two views and the labelled points
SHOWN = {'/' + topic for topic in (OVERLAY, *VIEW_TOPICS, LABELLED_POINTS)}


def published() -> set[str]:
    """The segmenter's topics in the root namespace; /diagnostics is a literal of the node."""
    tree = ast.parse((ROOT / 'mmcert_ros' / 'ros' / 'segmenter_node.py').read_text())
    assert DIAGNOSTICS in {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)}
    relative = (*OUTPUT_TOPICS, *VIEW_TOPICS, LABELLED_POINTS, L2_CERTIFICATION, STATUS,
                FRAME_TIMES)
    return {'/' + topic for topic in relative} | {DIAGNOSTICS}


def rviz_displays() -> list[dict]:
    config = yaml.safe_load((ROOT / 'config' / 'mmcert.rviz').read_text())
    manager = config['Visualization Manager']
    assert manager['Global Options']['Fixed Frame']
    return manager['Displays']


def rviz_colour(value: str) -> list[int]:
    return [int(part) for part in value.split(';')]


def test_rviz_config_shows_the_outputs_and_the_labelled_points():
    displays = rviz_displays()
    topics = {d['Topic']['Value'] for d in displays if 'Topic' in d}
    assert topics <= published() and topics == SHOWN
    images = {d['Topic']['Value'] for d in displays
              if d['Class'] == 'rviz_default_plugins/Image'}
    assert images == {'/' + topic for topic in (OVERLAY, *VIEW_TOPICS)}
    (cloud,) = [d for d in displays if d['Class'] == 'rviz_default_plugins/PointCloud2']
    assert cloud['Topic']['Value'] == '/' + LABELLED_POINTS
    assert cloud['Color Transformer'] == 'Intensity' and cloud['Channel Name'] == 'label'
    assert 'label' in {field.name for field in LABELLED_FIELDS}
    assert not cloud['Use rainbow'] and not cloud['Autocompute Intensity Bounds']
    assert (cloud['Min Intensity'], cloud['Max Intensity']) == (0, ROAD_CLASS)
    assert rviz_colour(cloud['Min Color']) == CLASS_COLOURS[0].tolist()
    assert rviz_colour(cloud['Max Color']) == CLASS_COLOURS[ROAD_CLASS].tolist()


def layout_panels(node) -> set[str]:
    if isinstance(node, str):
        return {node}
    return layout_panels(node['first']) | layout_panels(node['second'])


def test_foxglove_layout_shows_the_outputs_points_and_diagnostics():
    layout = json.loads((ROOT / 'config' / 'foxglove_layout.json').read_text())
    panels = layout['configById']
    assert layout_panels(layout['layout']) == set(panels)
    by_type = {}
    for panel_id, config in panels.items():
        by_type.setdefault(panel_id.split('!')[0], []).append(config)
    images = {config['imageMode']['imageTopic'] for config in by_type['Image']}
    assert images == {'/' + topic for topic in (OVERLAY, *VIEW_TOPICS)}
    (scene,) = by_type['3D']
    (diagnostics,) = by_type['DiagnosticSummary']
    assert diagnostics['topicToRender'] == DIAGNOSTICS
    assert set(scene['topics']) == {'/' + LABELLED_POINTS}
    assert images | set(scene['topics']) | {DIAGNOSTICS} <= published()
    points = scene['topics']['/' + LABELLED_POINTS]
    assert points['visible'] and points['colorField'] == 'label'
    assert (points['colorMode'], points['minValue'], points['maxValue']) == \
        ('gradient', 0, ROAD_CLASS)
    assert points['gradient'] == [f'#{bytes(CLASS_COLOURS[0]).hex()}ff',
                                  f'#{bytes(CLASS_COLOURS[ROAD_CLASS]).hex()}ff']
