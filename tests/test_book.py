"""The book of the executed lessons: the committed reference notebooks as published (no machine paths, no timing
noise, within their size budget), the strict build (a broken notebook fails it), and every page in a real browser
(Debian's Chromium, headless, through Playwright, on a local http.server bound to 127.0.0.1): no console error,
every image loaded, every internal link resolving, each Colab badge at this release, one screenshot per lesson.

The browser test skips where no Chromium is installed, unless WORKSHOP_REQUIRE_BROWSER=1 (.ci/run sets it and
installs Chromium). WORKSHOP_SCREENSHOTS=DIR keeps the screenshots there."""
from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest

import workshop_utils
from workshop_utils import book, executed, report, runner

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = ROOT / book.REFERENCE_RUN / executed.FOLDER
LESSONS = [p.name for p in runner.lesson_notebooks()]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TAG = f"v{workshop_utils.__version__}"


def build_book(run_dir: Path, out: Path) -> subprocess.CompletedProcess:
    """The documented command (the GitHub workflow runs the same)."""
    return subprocess.run([sys.executable, "-m", "workshop_utils", "book", str(run_dir), "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)


def generated_lesson(name: str) -> nbformat.NotebookNode:
    """A stand-in for an executed lesson: its own first cell (title, badge), code with text and a PNG output,
    and a machine path the publishing must remove."""
    import base64
    import io

    from PIL import Image

    png = io.BytesIO()
    Image.new("L", (64, 48), 128).save(png, format="PNG")
    first = nbformat.read(str(ROOT / "notebooks" / name), as_version=4).cells[0]
    code = nbformat.v4.new_code_cell("print('hello')", outputs=[
        nbformat.v4.new_output("stream", name="stdout", text="Dataset: /home/ada/chest_xray\n"),
        nbformat.v4.new_output("display_data", data={"image/png": base64.b64encode(png.getvalue()).decode(),
                                                     "text/plain": "<Figure>"})])
    return nbformat.v4.new_notebook(cells=[first, code], metadata={"kernelspec": {
        "name": "python3", "display_name": "Python 3", "language": "python"}})


@pytest.fixture(scope="module")
def run_folder() -> Path:
    """The committed reference run, its notebooks published: the book CI and the workflow build."""
    return ROOT / book.REFERENCE_RUN


@pytest.fixture(scope="module")
def built(tmp_path_factory, run_folder) -> Path:
    out = tmp_path_factory.mktemp("book") / "html"
    result = build_book(run_folder, out)
    assert result.returncode == 0, result.stderr
    assert "Built the book" in result.stdout and (out / "index.html").is_file()
    return out


# --------------------------------------------------------------------------- the published notebooks

def test_every_lesson_is_published_from_the_reference_run():
    assert sorted(p.name for p in PUBLISHED.glob("*.ipynb")) == LESSONS, (
        "benchmarks/reference/notebooks/ must hold every lesson: rerun benchmarks/series.py --reference")
    summary = report.load_summary(ROOT / book.REFERENCE_RUN)
    assert sorted(summary["notebooks"]) == LESSONS


@pytest.mark.parametrize("name", LESSONS)
def test_a_published_lesson_has_its_outputs_and_nothing_of_the_machine(name):
    path = PUBLISHED / name
    text = path.read_text(encoding="utf-8")
    assert path.stat().st_size < executed.MAX_NOTEBOOK_BYTES
    nb = nbformat.read(str(path), as_version=4)
    assert executed.machine_paths(nb) == []
    assert "papermill" not in nb.metadata
    assert not any("execution" in c.metadata or "papermill" in c.metadata for c in nb.cells)
    assert not re.search(r"\d+(\.\d+)?(it|batch|cell)/s|\d+ms/step|0x[0-9a-f]{6,}|\\r", text)
    assert "cuda_platform.cc" not in text and "oneDNN custom operations" not in text
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert sum(len(c.outputs) for c in code) > 3, "a published lesson keeps its outputs"
    # the code that ran is the lesson's code (only the injected parameters cell is the run's own)
    lesson = nbformat.read(str(ROOT / "notebooks" / name), as_version=4)
    ran = [c.source for c in code if "injected-parameters" not in c.metadata.get("tags", [])]
    assert ran == [c.source for c in lesson.cells if c.cell_type == "code"], (
        f"{name} changed since the reference run: rerun benchmarks/series.py --reference")


def test_the_published_set_is_within_its_budget():
    total = sum(p.stat().st_size for p in PUBLISHED.glob("*.ipynb"))
    assert total < executed.MAX_TOTAL_BYTES, f"{total / 1e6:.1f} MB"


def test_cleaning_keeps_the_last_screen_and_drops_the_noise():
    stream = ("I0000 00:00:1796564405.115794    2057 port.cc:153] oneDNN custom operations are on.\n"
              "\rDecoding:   0%|          | 0/5232 [00:00<?, ?it/s]\rDecoding: 100%|██████████| 5232/5232 "
              "[00:03<00:00, 1654.75it/s]\n"
              "Epoch 1/30\n131/131 - 4s - 31ms/step - accuracy: 0.9012 - loss: 0.2534\n"
              "WARNING:tensorflow:5 out of the last 5 calls to <function f at 0x7f3a2b1c4d60> triggered tf.function "
              "retracing.\nkept at 0x7f3a2b1c4d60\n")
    paths = executed.replacements("/data/x/chest_xray", Path("/srv/run"))
    cleaned = executed.clean_text(executed.clean_stream(stream), paths)
    assert cleaned == ("Decoding: 100%|██████████| 5232/5232\nEpoch 1/30\n131/131 - accuracy: 0.9012 - loss: 0.2534\n"
                       "kept at 0x...\n")
    assert executed.clean_text("Dataset: /data/x/chest_xray/train", paths) == "Dataset: data/chest_xray/train"


def test_publishing_refuses_a_notebook_that_keeps_a_machine_path(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(1)", outputs=[
        nbformat.v4.new_output("stream", name="stdout", text="saved to /home/ada/secret/model.keras\n")])])
    nbformat.write(nb, str(tmp_path / "01_a.ipynb"))
    with pytest.raises(ValueError, match=r"01_a\.ipynb would be published with machine paths.*/home/ada"):
        executed.publish(tmp_path, tmp_path / "out", None, ["01_a.ipynb"])
    assert not (tmp_path / "out" / "01_a.ipynb").exists()


# --------------------------------------------------------------------------- the strict build

def test_the_strict_build_fails_on_a_broken_notebook(tmp_path):
    run = tmp_path / "run"
    (run / executed.FOLDER).mkdir(parents=True)
    shutil.copyfile(ROOT / book.REFERENCE_RUN / "summary.json", run / "summary.json")
    nbformat.write(generated_lesson(LESSONS[0]), str(run / executed.FOLDER / LESSONS[0]))
    broken = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(
        "# 99. Broken\n\nSee [the missing lesson](no_such_lesson.ipynb).")])
    nbformat.write(broken, str(run / executed.FOLDER / "99_broken.ipynb"))
    out = tmp_path / "html"
    result = build_book(run, out)
    assert result.returncode == 1
    assert "strict build failed" in result.stderr and "99_broken" in result.stderr, result.stderr
    assert not out.exists() and not list(tmp_path.glob(".html.*")), "a failed build leaves nothing behind"


def test_the_book_of_an_instructors_own_run_publishes_its_notebooks(tmp_path):
    """A run folder as `run` writes it (executed notebooks, not yet published) builds too, without its paths."""
    run = tmp_path / "runs" / "2026-12-06"
    run.mkdir(parents=True)
    summary = json.loads((ROOT / book.REFERENCE_RUN / "summary.json").read_text())
    summary["data"] = "/home/ada/chest_xray"
    (run / "summary.json").write_text(json.dumps(summary))
    nbformat.write(generated_lesson(LESSONS[0]), str(run / LESSONS[0]))
    result = build_book(run, tmp_path / "html")
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "html" / "lessons" / LESSONS[0].replace(".ipynb", ".html")).read_text()
    assert "Dataset: data/chest_xray" in page and "/home/ada" not in page


def test_the_readme_links_each_lessons_executed_page(built):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    index = (built / "index.html").read_text(encoding="utf-8")
    for name in LESSONS:
        assert f"]({book.REFERENCE_RUN}/{executed.FOLDER}/{name})" in readme, f"README does not link {name}'s page"
        assert f'href="lessons/{name.replace(".ipynb", ".html")}"' in index, f"the book's front page: {name}"
    if PUBLISHED.is_dir():  # on GitHub the link opens the committed notebook, outputs included
        assert all((PUBLISHED / name).is_file() for name in LESSONS)


# --------------------------------------------------------------------------- the GitHub side

def test_the_github_workflow_builds_the_book_with_the_tested_command():
    """.github/workflows/book.yml publishes what build_book builds here: the same command, the reference run."""
    import yaml

    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "book.yml").read_text(encoding="utf-8"))
    steps = workflow["jobs"]["build"]["steps"]
    runs = [step.get("run", "") for step in steps]
    [command] = [r for r in runs if "workshop_utils book" in r]
    out = command.split("--out")[1].strip()
    assert command == f"python -m workshop_utils book {book.REFERENCE_RUN} --out {out}"
    assert any('-c requirements-lock.txt -e ".[book]"' in r for r in runs)
    [upload] = [s for s in steps if s.get("uses", "").startswith("actions/upload-pages-artifact")]
    assert upload["with"]["path"] == out
    assert workflow["jobs"]["deploy"]["steps"][0]["uses"].startswith("actions/deploy-pages")


def test_the_issue_template_asks_for_the_lesson_the_cell_the_environment_and_where():
    import yaml

    form = yaml.safe_load((ROOT / ".github" / "ISSUE_TEMPLATE" / "problem.yml").read_text(encoding="utf-8"))
    fields = {field["id"]: field for field in form["body"]}
    assert [o for o in fields["lesson"]["attributes"]["options"] if o[:2].isdigit()] == [
        name.removesuffix(".ipynb") for name in LESSONS]  # the lessons as they are named now
    assert "python -m workshop_utils check" in fields["check"]["attributes"]["label"]
    assert {"Colab", "local (laptop or desktop)"} <= set(fields["where"]["attributes"]["options"])
    for required in ("lesson", "cell", "where", "check", "what"):
        assert fields[required]["validations"]["required"], required


# --------------------------------------------------------------------------- in a real browser

@pytest.fixture(scope="module")
def served(built):
    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(built))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM:
        if os.environ.get("WORKSHOP_REQUIRE_BROWSER") == "1":
            pytest.fail("No Chromium: apt-get install -y chromium (.ci/run does)")
        pytest.skip("no Chromium here (apt-get install -y chromium); WORKSHOP_REQUIRE_BROWSER=1 makes this a failure")
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def test_every_page_loads_in_a_real_browser_with_its_images_and_links(built, served, browser, tmp_path):
    shots = Path(os.environ.get("WORKSHOP_SCREENSHOTS") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    pages = sorted(p.relative_to(built).as_posix() for p in built.rglob("*.html")
                   if not p.relative_to(built).as_posix().startswith("_static/"))  # the theme's template parts
    assert {"index.html", "instructor.html", "data.html", "benchmarks.html"} <= set(pages)
    lesson_pages = [f"lessons/{name.replace('.ipynb', '.html')}" for name in LESSONS]
    assert set(lesson_pages) <= set(pages)
    problems, links, ids = [], {}, {}
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    for page_path in pages:
        page = context.new_page()
        # a missing file is reported with its URL by the response check (the browser's own favicon.ico is no page's)
        page.on("console", lambda m, p=page_path: m.type == "error" and not m.text.startswith(
            "Failed to load resource") and problems.append(f"{p}: console: {m.text}"))
        page.on("response", lambda r, p=page_path: r.status >= 400 and not r.url.endswith("/favicon.ico")
                and problems.append(f"{p}: {r.status} for {r.url}"))
        page.on("pageerror", lambda e, p=page_path: problems.append(f"{p}: page error: {e}"))
        page.on("requestfailed", lambda r, p=page_path: problems.append(f"{p}: failed request {r.url}"))
        page.goto(f"{served}/{page_path}", wait_until="load")
        broken = page.evaluate("() => [...document.images].filter(i => !(i.complete && i.naturalWidth > 0))"
                               ".map(i => i.getAttribute('src'))")
        problems += [f"{page_path}: image not loaded: {src}" for src in broken]
        links[page_path] = page.evaluate("() => [...document.querySelectorAll('a[href]')].map(a => a.href)")
        ids[page_path] = set(page.evaluate("() => [...document.querySelectorAll('[id]')].map(e => e.id)"))
        if page_path in lesson_pages:
            plots = page.locator(".cell_output img")
            assert plots.count() >= 1, f"{page_path} shows no output image"
            plots.first.scroll_into_view_if_needed()  # the screenshot shows the lesson's first plot as it ran
            page.screenshot(path=str(shots / page_path.replace("lessons/", "").replace(".html", ".png")))
        page.close()
    context.close()
    colab = []
    for page_path, hrefs in links.items():
        for href in hrefs:
            url = urlsplit(href)
            if url.netloc == urlsplit(served).netloc:
                target = unquote(url.path).lstrip("/") or "index.html"
                if target.endswith("/"):
                    target += "index.html"
                if not (built / target).is_file():
                    problems.append(f"{page_path}: link to a missing file {href}")
                elif url.fragment and target in ids and unquote(url.fragment) not in ids[target]:
                    problems.append(f"{page_path}: link to a missing anchor {href}")
            elif "colab.research.google.com/github/" in href:
                colab.append(href)
                if f"/blob/{TAG}/" not in href:
                    problems.append(f"{page_path}: Colab link not at {TAG}: {href}")
    assert not problems, "\n".join(problems[:30])
    for name in LESSONS:  # each lesson page opens its student copy and its solutions in Colab, at this release
        page = f"lessons/{name.replace('.ipynb', '.html')}"
        assert any(h.endswith(f"/notebooks/student/{name}") for h in links[page] if "colab" in h), page
        assert any(h.endswith(f"/notebooks/{name}") for h in links[page] if "colab" in h), page
        assert any("/_downloads/" in h and h.endswith(name) for h in links[page]), f"{page}: no student download"
    assert len(list(shots.glob("*.png"))) == len(LESSONS)
