"""The README is the contract with a new user: short, every command in it parses, its Python
example runs, its figures are the measured ones in docs/figures, its links and layout are true."""
import ast
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from mmcert_ros.tools.cli import SUBCOMMANDS, build_parser

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / 'README.md').read_text()
FIGURES = ROOT / 'docs' / 'figures'
#: programs a README command may start with that belong to the user's system, not to us
EXTERNAL = {'mkdir', 'cd', 'git', 'rosdep', 'pip', 'colcon', 'source'}


def code_blocks() -> list[tuple[str, str]]:
    """``(language, text)`` of every fenced block and every indented (4-space) block before
    the Layout section (whose block is a folder list)."""
    text = README.split('## Layout', 1)[0]
    blocks = [(lang, body) for lang, body in re.findall(r'```(\w*)\n(.*?)```', text, re.S)]
    unfenced = re.sub(r'```.*?```', '', text, flags=re.S)
    for block in re.findall(r'(?:^(?: {4}.*)?\n)*(?:^ {4}\S.*\n)+', unfenced, re.M):
        blocks.append(('sh', '\n'.join(line[4:] for line in block.splitlines())))
    return blocks


def shell_commands() -> list[list[str]]:
    """Every shell command of the README's blocks, comments dropped, ``&&`` chains split."""
    commands = []
    for lang, body in code_blocks():
        if lang == 'python':
            continue
        for line in body.splitlines():
            words = shlex.split(line, comments=True)
            while words:
                head, sep, words = _split_at(words, '&&')
                if head:
                    commands.append(head)
    return commands


def _split_at(words, token):
    if token in words:
        index = words.index(token)
        return words[:index], token, words[index + 1:]
    return words, None, []


def launch_arguments(path: Path) -> set[str]:
    """The keys of a launch file's ``ARGUMENTS`` dict literal (read, not imported)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], 'id', '') == 'ARGUMENTS':
            return {key.value for key in node.value.keys}
    raise AssertionError(f'{path} declares no ARGUMENTS')


def check_mmcert_ros(argv: list[str]) -> None:
    assert argv and argv[0] in SUBCOMMANDS or argv == ['--help'], argv
    if argv == ['--help']:
        return
    parser = build_parser()
    try:
        parser.parse_args(argv)
    except SystemExit as stop:
        pytest.fail(f'mmcert-ros {" ".join(argv)}: does not parse (exit {stop.code})')


def check_command(words: list[str]) -> None:
    program, args = words[0], words[1:]
    if program in EXTERNAL:
        return
    if program == 'make':
        targets = set(re.findall(r'^([a-z]+):', (ROOT / 'Makefile').read_text(), re.M))
        assert set(args) <= targets, words
    elif program in ('mmcert-ros', '.venv/bin/mmcert-ros'):
        check_mmcert_ros(args)
    elif program == 'ros2' and args[:2] == ['run', 'mmcert_ros']:
        assert args[2] in ('mmcert-ros', 'segmenter', 'sim_drive'), words
        if args[2] == 'mmcert-ros':
            check_mmcert_ros(args[3:])
    elif program == 'ros2' and args[:2] == ['launch', 'mmcert_ros']:
        launch_file = ROOT / 'launch' / args[2]
        assert launch_file.is_file(), words
        given = {arg.split(':=')[0] for arg in args[3:] if ':=' in arg}
        if given:
            assert given <= launch_arguments(launch_file), (words, launch_arguments(launch_file))
    elif program.endswith('python') and args[:2] == ['-m', 'pytest']:
        markers = set(re.findall(r'^\s+(\w+):', (ROOT / 'setup.cfg').read_text(), re.M))
        expression = args[args.index('-m', 2) + 1] if '-m' in args[2:] else ''
        assert set(re.findall(r'\w+', expression)) - {'not', 'and', 'or'} <= markers, words
        assert (ROOT / args[-1]).is_dir(), words
    else:
        pytest.fail(f'README command {" ".join(words)!r}: no check knows this program')


def test_readme_is_short():
    assert len(README.splitlines()) <= 180


def test_every_readme_command_parses():
    commands = shell_commands()
    assert ['make', 'demo'] in commands and ['make', 'test'] in commands
    assert any(words[:2] == ['ros2', 'launch'] for words in commands)
    for words in commands:
        check_command(words)


def test_every_subcommand_the_readme_names_has_help(capsys):
    from mmcert_ros.tools.cli import main

    named = [name for name in SUBCOMMANDS if f'`{name}`' in README or f'mmcert-ros {name}'
             in README]
    assert set(named) == set(SUBCOMMANDS)   # the README names every subcommand
    for name in named:
        assert main([name, '--help']) == 0
        assert 'usage: mmcert-ros' in capsys.readouterr().out


def test_the_python_example_runs():
    (example,) = [body for lang, body in code_blocks() if lang == 'python']
    assert len(example.splitlines()) <= 10
    result = subprocess.run([sys.executable, '-c', example], capture_output=True, text=True,
                            cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    fraction, delta = map(float, result.stdout.split())
    assert 0.5 < fraction <= 1.0 and 0.0 < delta < 0.5


def accuracy_row(data: str, model: str, path: str, r_rgb: int) -> str:
    """The README accuracy row of one measured point of a certified-accuracy JSON."""
    point = json.loads((FIGURES / path).read_text())['certified'][str(r_rgb)]
    fraction = point['certified_fraction']
    wrong = (fraction - point['pixel_accuracy']) / fraction
    if 'wrong_fraction' in point:          # measured directly since the metric exists
        assert point['wrong_fraction'] == pytest.approx(wrong, abs=1e-12)
    return (f"| {data} | `{model}` | {r_rgb} | {point['iou']:.3f} | {100 * fraction:.1f} % | "
            f"{100 * wrong:.2f} % |")


def test_accuracy_figures_are_the_measured_ones():
    rows = [accuracy_row('synthetic, held out (20 frames)', 'default.pt',
                         'model_certified_n100.json', 0),
            accuracy_row('synthetic, held out (20 frames)', 'default.pt',
                         'model_certified_n100.json', 10),
            accuracy_row('synthetic, held out (20 frames)', 'points.pt',
                         'model_points_certified_n100.json', 0),
            accuracy_row('synthetic, held out (20 frames)', 'fast.pt',
                         'model_fast_certified_n100_int8.json', 0),
            accuracy_row('synthetic, held out (3 frames, N = 1000)', 'default.pt',
                         'model_certified_n1000.json', 25)]
    lines = README.splitlines()
    for row in rows:
        assert row in lines, row
    trial = json.loads((FIGURES / 'kitti_road_trial.json').read_text())
    low, high = trial['certified_iou_r0']
    wrong_low, wrong_high = (round(100 * x) for x in trial['certified_but_wrong_fraction'])
    assert (f'| real KITTI Road, RGB only (outside trial) | `default.pt` | 0 | {low:.2f} to '
            f'{high:.2f} | | {wrong_low} to {wrong_high} % |') in lines


#: the two bench runs the README's performance table quotes: (JSON, run inside it or None)
PERFORMANCE_RUNS = (('bench_xeon_amx_default.json', None),
                    ('bench_xeon_avx2cap_default.json', None),
                    ('bench_xeon_avx2cap_fast.json', None),
                    ('bench_nontrunk.json', 'after_2_threads'))
MODE_NAMES = {'fp32': 'fp32 (exact)', 'openvino_bf16': 'OpenVINO bf16',
              'openvino_int8': 'OpenVINO int8'}


def performance_rows() -> list[str]:
    """The README performance rows: per mode, end-to-end ms per frame and the speed-up
    against the reference path of the same run, for each quoted run."""
    engines = []
    for path, run in PERFORMANCE_RUNS:
        figures = json.loads((FIGURES / path).read_text())
        engines.append((figures[run] if run else figures)['engine'])
    rows = ['| reference hot path | ' + ' | '.join(
        f"{1e3 * engine['reference']['total_s']:.0f} | 1x" for engine in engines) + ' |']
    for mode, name in MODE_NAMES.items():
        rows.append(f'| {name} | ' + ' | '.join(
            f"{1e3 * engine[mode]['engine_total_s']:.0f} | {engine[mode]['engine_speedup']:.2f}x"
            for engine in engines) + ' |')
    return rows


def test_performance_figures_are_the_measured_ones():
    for path, run in PERFORMANCE_RUNS:
        figures = json.loads((FIGURES / path).read_text())
        figures = figures[run] if run else figures
        assert figures['frame'] == '1242x375' and figures['num_samples'] == 100
        assert figures['torch_threads'] == 2
    for row in performance_rows():
        assert row in README.splitlines(), row


def test_layout_names_every_folder_of_the_package_and_only_real_ones():
    layout = README.split('## Layout', 1)[1]
    named = set(re.findall(r'^\s+(mmcert_ros/[\w/]+?)/\s', layout, re.M))
    folders = {str(path.parent.relative_to(ROOT)) for path in
               (ROOT / 'mmcert_ros').rglob('__init__.py')} - {'mmcert_ros'}
    assert folders <= named, sorted(folders - named)
    for folder in re.findall(r'^\s+([\w/]+)/\s', layout, re.M):
        assert (ROOT / folder).is_dir(), folder


def test_local_links_and_pictures_exist():
    for target in re.findall(r'\]\(([^)#]+)(?:#[^)]*)?\)', README):
        if not target.startswith(('http://', 'https://')):
            assert (ROOT / target).exists(), target
