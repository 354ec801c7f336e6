"""Every relative link in the documentation leads to an existing file, and to a heading there.

Checks README.md, docs/*.md and bench/README.md: markdown links `[text](path)`,
`[text](path#anchor)` and `[text](#anchor)`, images, and reference definitions `[name]: path`.
An anchor into a markdown file must name one of its headings as GitHub slugs them. Web links are
not followed.
"""

import pathlib
import re
import urllib.parse

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

FENCE = re.compile(r'^\s*(```|~~~)')
INLINE_CODE = re.compile(r'(`+)(?:(?!\1).)+?\1')
INLINE_LINK = re.compile(r'!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+"[^"]*")?\s*\)')
REFERENCE = re.compile(r'^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+"[^"]*")?\s*$')
HEADING = re.compile(r'^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$')
EXTERNAL = re.compile(r'^[a-zA-Z][a-zA-Z0-9+.-]*:')


def documentation_files() -> list[pathlib.Path]:
    """The markdown files whose links are checked."""
    docs = sorted((ROOT / 'docs').glob('*.md'))
    return [ROOT / 'README.md', *docs, ROOT / 'bench' / 'README.md']


def prose_lines(text: str) -> list[str]:
    """The lines of a markdown text outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def links(text: str) -> list[str]:
    """The link targets of a markdown text (inline, image and reference), code excluded."""
    targets = []
    for line in prose_lines(text):
        line = INLINE_CODE.sub('', line)
        targets.extend(match.group(1) for match in INLINE_LINK.finditer(line))
        reference = REFERENCE.match(line)
        if reference:
            targets.append(reference.group(1))
    return targets


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its text, lower case, punctuation out, spaces dashed.

    Args:
        heading: the heading's markdown text, without the leading #s.

    Returns:
        The anchor without its duplicate suffix (-1, -2, ...).
    """
    text = re.sub(r'!?\[([^\]]*)\]\([^)]*\)', r'\1', heading)  # a link counts as its text
    text = re.sub(r'<[^>]+>', '', text)  # inline HTML tags
    text = text.replace('`', '').strip().lower()
    text = re.sub(r'[^\w\- ]', '', text)
    return text.replace(' ', '-')


def anchors(text: str) -> set[str]:
    """Every anchor a markdown text's headings give, duplicates numbered as GitHub does."""
    seen: dict[str, int] = {}
    result = set()
    for line in prose_lines(text):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f'{base}-{count}')
    return result


def broken_links(document: pathlib.Path) -> list[str]:
    """Each relative link of `document` that leads nowhere, with the reason.

    Args:
        document: a markdown file.

    Returns:
        One line per broken link: the target and what is missing.
    """
    problems = []
    for target in links(document.read_text(encoding='utf-8')):
        if not target or EXTERNAL.match(target):
            continue
        path_part, _, anchor = target.partition('#')
        path = urllib.parse.unquote(path_part)
        destination = (document.parent / path).resolve() if path else document
        if not destination.exists():
            problems.append(f'{target}: no file {destination}')
            continue
        if anchor and destination.suffix == '.md':
            wanted = urllib.parse.unquote(anchor).lower()
            if wanted not in anchors(destination.read_text(encoding='utf-8')):
                problems.append(f'{target}: no heading with anchor #{wanted} in {destination}')
    return problems


@pytest.mark.parametrize('document', documentation_files(),
                         ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_resolves(document):
    assert document.exists(), f'{document} is missing'
    problems = broken_links(document)

    assert not problems, f'{document.relative_to(ROOT)}:\n' + '\n'.join(problems)


def test_the_front_door_links_to_the_docs():
    targets = links((ROOT / 'README.md').read_text(encoding='utf-8'))

    assert 'docs/index.md' in targets
    assert any(target.startswith('docs/parameters.md') for target in targets)


@pytest.mark.parametrize('heading, expected', [
    ('Answers in 3D (depth + CameraInfo)', 'answers-in-3d-depth--camerainfo'),
    ('Without ROS: `cosmos-reason`', 'without-ros-cosmos-reason'),
    ('Lifecycle: bring-up, take-down, shutdown', 'lifecycle-bring-up-take-down-shutdown'),
    ('The `window.dds_filter` parameter', 'the-windowdds_filter-parameter'),
    ('[Models](docs/models.md) and more', 'models-and-more'),
])
def test_slugs_follow_github(heading, expected):
    assert slug(heading) == expected


def test_a_broken_link_or_anchor_is_reported(tmp_path):
    (tmp_path / 'other.md').write_text('# Other page\n\n## A section\n\n## A section\n')
    document = tmp_path / 'page.md'
    document.write_text(
        '# Page\n\n'
        '[fine](other.md#a-section) [second](other.md#a-section-1) [self](#page)\n'
        '[gone](missing.md) [no anchor](other.md#nowhere) [no self](#nothing)\n'
        '[web](https://example.com/x.md) `[code](ignored.md)`\n\n'
        '```\n[fenced](ignored.md)\n```\n\n'
        '[ref]: also_missing.md\n')

    problems = broken_links(document)

    assert [problem.split(':')[0] for problem in problems] == [
        'missing.md', 'other.md#nowhere', '#nothing', 'also_missing.md']
