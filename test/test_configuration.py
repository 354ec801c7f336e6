"""The parameter files and launch arguments: every key is a declared parameter, in range."""

import dataclasses
import pathlib

import pytest
import rclpy
from rclpy.node import Node
import yaml

from cosmos_reason_ros.core.backends.factory import BackendSettings
from cosmos_reason_ros.core.backends.remote_config import RemoteConfig
from cosmos_reason_ros.core.config import GoalDefaults, GoalLimits, ModelConfig, WindowConfig
from cosmos_reason_ros.core.depth.geometry import LiftSettings
from cosmos_reason_ros.core.scheduling import Policy
from cosmos_reason_ros.ros.launch_arguments import (
    ARGUMENTS,
    launch_transitions,
    parameter_overrides,
    remappings,
)
from cosmos_reason_ros.ros.parameters import (
    declare_node_config,
    NodeConfig,
    resolve_model,
    SPECS,
)

ROOT = pathlib.Path(__file__).resolve().parents[1]
PRESETS = sorted((ROOT / 'config').glob('*.yaml'))


def _flatten(tree: dict, prefix: str = '') -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f'{prefix}{key}.'))
        else:
            flat[f'{prefix}{key}'] = value
    return flat


def test_the_presets_the_issue_asks_for_exist():
    names = {path.stem for path in PRESETS}
    assert {'desktop_gpu', 'jetson_thor', 'cpu_test_model'} <= names


@pytest.mark.parametrize('path', PRESETS, ids=lambda p: p.stem)
def test_every_key_of_a_preset_is_a_declared_parameter(path):
    parameters = _flatten(yaml.safe_load(path.read_text())['/**']['ros__parameters'])
    declared = {spec.name for spec in SPECS} | {'use_sim_time'}
    assert set(parameters) <= declared, set(parameters) - declared


@pytest.mark.parametrize('path', PRESETS, ids=lambda p: p.stem)
def test_a_preset_loads_into_the_node_configuration(path):
    context = rclpy.Context()
    rclpy.init(context=context, args=['--ros-args', '--params-file', str(path)])
    node = Node('cosmos_reason', context=context)
    try:
        config = declare_node_config(node, image_topic='/camera/image_raw')
        expected = _flatten(yaml.safe_load(path.read_text())['/**']['ros__parameters'])
        assert config.model.model == resolve_model(expected['model'])
        assert config.window.max_pixels == expected['window.max_pixels']
        assert config.goals.max_new_tokens == expected['goal.max_new_tokens']
        assert config.concurrency_policy is Policy(expected['concurrency_policy'])
        assert config.window.source == '/camera/image_raw'
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)


def test_the_parameter_defaults_are_the_config_defaults():
    """Each default is declared once, in the config dataclasses: a node with no parameter set
    reads exactly NodeConfig(), whose parts are the core's own defaults.
    """
    context = rclpy.Context()
    rclpy.init(context=context, args=[])
    node = Node('cosmos_reason', context=context)
    try:
        config = declare_node_config(node, image_topic='image')
        # The one default the node fills in: its name as the session key for routers.
        remote = dataclasses.replace(RemoteConfig(), session_key='/cosmos_reason')
        assert config == dataclasses.replace(NodeConfig(), remote=remote)
        assert (config.model, config.window, config.goals, config.limits,
                config.lift) == (ModelConfig(), WindowConfig(), GoalDefaults(), GoalLimits(),
                                 LiftSettings())
        assert config.backend_settings == dataclasses.replace(BackendSettings(), remote=remote)
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)


def test_a_value_outside_its_choices_is_refused_with_the_choices():
    context = rclpy.Context()
    rclpy.init(context=context, args=['--ros-args', '-p', 'concurrency_policy:=sometimes'])
    node = Node('cosmos_reason', context=context)
    try:
        with pytest.raises(ValueError, match='reject, queue, preempt'):
            declare_node_config(node, image_topic='image')
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)


def test_launch_file_declares_exactly_the_tested_arguments():
    source = (ROOT / 'launch' / 'reason.launch.py').read_text()
    assert 'for name, (default, description) in ARGUMENTS.items()' in source
    assert set(ARGUMENTS) == {'params_file', 'model', 'image_topic', 'compressed',
                              'namespace', 'use_sim_time', 'managed', 'autostart',
                              'depth_topic', 'camera_info_topic'}
    assert 'launch_transitions(values)' in source and 'is_managed(values)' in source
    assert "'desktop_gpu.yaml'" in source and (ROOT / 'config' / 'desktop_gpu.yaml').exists()


@pytest.mark.parametrize('model, compressed, sim, expected', [
    ('', 'false', 'false', {'use_sim_time': False, 'compressed_input': False,
                            'autostart': True}),
    ('/models/reason2', 'true', 'True', {'use_sim_time': True, 'compressed_input': True,
                                         'model': '/models/reason2', 'autostart': True}),
])
def test_launch_arguments_become_parameter_overrides(model, compressed, sim, expected):
    values = {name: default for name, (default, _) in ARGUMENTS.items()}
    values.update(model=model, compressed=compressed, use_sim_time=sim)
    assert parameter_overrides(values) == expected


def test_the_image_topic_argument_remaps_raw_and_compressed():
    values = {name: default for name, (default, _) in ARGUMENTS.items()}
    values['image_topic'] = '/front/image_raw/'
    assert remappings(values) == [('image', '/front/image_raw'),
                                  ('image/compressed', '/front/image_raw/compressed')]


@pytest.mark.parametrize('info, expected_info', [
    ('', '/camera/color/camera_info'),  # beside the image topic
    ('/calib/color_info', '/calib/color_info'),
])
def test_a_depth_topic_turns_depth_on_and_remaps_depth_and_camera_info(info, expected_info):
    values = {name: default for name, (default, _) in ARGUMENTS.items()}
    values.update(image_topic='/camera/color/image_raw',
                  depth_topic='/camera/aligned_depth_to_color/image_raw',
                  camera_info_topic=info)
    assert parameter_overrides(values)['depth.enabled'] is True
    assert remappings(values)[2:] == [('depth', '/camera/aligned_depth_to_color/image_raw'),
                                      ('camera_info', expected_info)]


@pytest.mark.parametrize('managed, autostart, node_autostart, transitions', [
    ('false', 'true', True, []),                          # a plain node walks itself
    ('false', 'false', False, []),                        # waits for ros2 lifecycle
    ('true', 'true', False, ['configure', 'activate']),   # launch drives it
    ('true', 'false', False, []),                         # a lifecycle manager drives it
])
def test_managed_and_autostart_decide_who_walks_the_node_to_active(
        managed, autostart, node_autostart, transitions):
    values = {name: default for name, (default, _) in ARGUMENTS.items()}
    values.update(managed=managed, autostart=autostart)
    assert parameter_overrides(values)['autostart'] is node_autostart
    assert launch_transitions(values) == transitions


def test_a_relative_model_directory_is_found_in_the_working_directory_first(tmp_path,
                                                                            monkeypatch):
    share = tmp_path / 'share'
    (share / 'models' / 'tiny').mkdir(parents=True)
    (tmp_path / 'work' / 'models' / 'tiny').mkdir(parents=True)
    monkeypatch.chdir(tmp_path / 'work')

    assert resolve_model('models/tiny', share) == 'models/tiny'


def test_a_relative_model_directory_is_found_in_the_share_directory(tmp_path, monkeypatch):
    share = tmp_path / 'share'
    (share / 'models' / 'tiny').mkdir(parents=True)
    monkeypatch.chdir(tmp_path)

    assert resolve_model('models/tiny', share) == str(share / 'models' / 'tiny')


@pytest.mark.parametrize('model', ['nvidia/Cosmos-Reason2-2B', '/models/reason2-2b', ''])
def test_hub_ids_absolute_and_unknown_paths_are_left_alone(model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_model(model, tmp_path / 'share') == model


def test_the_cpu_presets_model_is_found_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    preset = yaml.safe_load((ROOT / 'config' / 'cpu_test_model.yaml').read_text())
    model = pathlib.Path(resolve_model(preset['/**']['ros__parameters']['model']))

    assert model.is_absolute(), 'scripts/setup.sh builds it in the installed share directory'
    assert (model / 'config.json').is_file()


def _config_from(args: list[str]) -> NodeConfig:
    context = rclpy.Context()
    rclpy.init(context=context, args=['--ros-args', *args])
    node = Node('cosmos_reason', context=context)
    try:
        return declare_node_config(node, image_topic='image')
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)


def test_cameras_and_their_tolerance_read_from_a_parameter_file(tmp_path):
    params = tmp_path / 'cameras.yaml'
    # `cameras` is a list, so its tolerance is a dotted key beside it (docs/parameters.md).
    params.write_text('/**:\n  ros__parameters:\n    cameras: [head, wrist]\n'
                      '    cameras.sync_tolerance: 0.05\n    goal:\n      max_cameras: 3\n')
    config = _config_from(['--params-file', str(params)])

    assert config.cameras == config.camera_names == ('head', 'wrist')
    assert config.sync_tolerance == 0.05 and config.limits.max_cameras == 3
    assert NodeConfig().camera_names == ('',), 'no cameras: the one unnamed camera'


@pytest.mark.parametrize('cameras, match', [
    ('[head, 3d]', r"parameter 'cameras': cameras\[1\] '3d' is not a camera name"),
    ('[head, wrist, head]', r"parameter 'cameras': cameras\[2\] 'head' repeats cameras\[0\]"),
    ("['wrist/left']", r"cameras\[0\] 'wrist/left' is not a camera name"),
])
def test_a_bad_camera_name_is_refused_at_configure_naming_the_parameter(cameras, match):
    with pytest.raises(ValueError, match=match):
        _config_from(['-p', f'cameras:={cameras}'])
