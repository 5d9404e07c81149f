"""The ``chart`` directive on a tiny Sphinx project: embeds valid charts offline, rejects bad ones under -W."""

import json

import plotly.graph_objects as go
import pytest

from tests.docs.helpers import DOCS, sphinx_build

CONF = f"""
import sys
sys.path.insert(0, {str(DOCS / "_ext")!r})
extensions = ["myst_parser", "plotly_chart"]
"""


def project(tmp_path, page: str, figures: dict[str, str]):
    src = tmp_path / "src"
    (src / "charts").mkdir(parents=True)
    (src / "conf.py").write_text(CONF)
    (src / "index.md").write_text("# Index\n\n```{toctree}\npage\n```\n")
    (src / "page.md").write_text(page)
    for name, text in figures.items():
        (src / "charts" / name).write_text(text)
    return src


def two_traces() -> str:
    fig = go.Figure([go.Scatter(x=[0, 1], y=[1, 0], name="a"), go.Bar(x=[0, 1], y=[2, 3], name="b")])
    return fig.to_json()


def test_valid_chart_is_inlined_with_plotly_served_locally(tmp_path):
    page = "# Page\n\n```{chart} charts/fig.json\n:height: 300\n\nTwo <traces> & a *caption*.\n```\n"
    src = project(tmp_path, page, {"fig.json": two_traces()})
    out = tmp_path / "html"
    result = sphinx_build(src, out)
    assert result.returncode == 0, result.stderr
    html = (out / "page.html").read_text()
    assert 'data-traces="2"' in html and "<figcaption>" in html and "<em>caption</em>" in html
    assert "_static/plotly.min.js" in html and "https://cdn" not in html
    embedded = html.split('type="application/json"', 1)[1].split(">", 1)[1].split("</script>", 1)[0]
    figure = json.loads(embedded)
    assert [t["type"] for t in figure["data"]] == ["scatter", "bar"] and figure["layout"]["height"] == 300
    assert (out / "_static" / "plotly.min.js").stat().st_size > 1_000_000
    assert (out / "_static" / "plotly_chart.js").is_file()
    assert "plotly.min.js" not in (out / "index.html").read_text()  # only pages with charts load it


@pytest.mark.parametrize(
    ("page", "figures", "message"),
    [
        ("```{chart} charts/missing.json\n\nCaption.\n```\n", {}, "no such file"),
        ("```{chart} charts/bad.json\n\nCaption.\n```\n", {"bad.json": '{"data": ['}, "invalid JSON"),
        ("```{chart} charts/bad.json\n\nCaption.\n```\n", {"bad.json": '{"layout": {}}'}, "not a Plotly figure"),
        ("```{chart} charts/bad.json\n\nCaption.\n```\n", {"bad.json": '{"data": [{"x": [1]}]}'}, 'no "type"'),
        ("```{chart} charts/fig.json\n```\n", {"fig.json": "two"}, "needs a caption"),
    ],
    ids=["missing-file", "invalid-json", "no-data", "no-trace-type", "no-caption"],
)
def test_bad_chart_fails_the_build_under_W(tmp_path, page, figures, message):
    figures = {name: two_traces() if text == "two" else text for name, text in figures.items()}
    src = project(tmp_path, "# Page\n\n" + page, figures)
    result = sphinx_build(src, tmp_path / "html")
    assert result.returncode != 0
    assert message in result.stderr and "page.md" in result.stderr, result.stderr
