"""Tagging runs on real catalogs and real image files, through a stand-in engine (tests/fakes)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from captioneer.backends.base import EngineConfig
from captioneer.backends.cancel import CancelToken
from captioneer.backends.errors import Cancelled, GenerationError
from captioneer.backends.host import HostedBackend, HostPolicy
from captioneer.backends.host_process import FAULT_INJECTION_KEY
from captioneer.backends.request import GenerationRequest
from captioneer.desktop.core.images import engine_budget, prepare_image
from captioneer.desktop.library.catalog import Catalog, open_catalog
from captioneer.desktop.library.run_spec import (
    RATE_AFTER_PHOTOS,
    RATE_AFTER_SECONDS,
    RATE_MIN_SECONDS,
    rate_and_eta,
)
from captioneer.desktop.library.runs import (
    RunController,
    RunPlan,
    RunProgress,
    RunSpec,
    abandon_run,
    execute_run,
    failed_items,
    get_run,
    plan_run,
    run_counts,
)
from captioneer.desktop.library.scanner import scan_library
from tests.fakes.tagging_engine import BatchingFakeEngine, FakeEngine, fake_config, read_log

REPO = Path(__file__).resolve().parents[1]


def colour(i: int) -> tuple[int, int, int]:
    return ((i * 53) % 256, (i * 97) % 256, (i * 29) % 256)


def make_library(root: Path, count: int) -> Path:
    for i in range(count):
        path = root / f"sub{i % 3}" / f"photo_{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (64, 64), colour(i)).save(path)
    return root


def key(i: int) -> str:
    return ",".join(str(v) for v in colour(i))


def setup_run(catalog: Catalog, root: Path, spec: RunSpec | None = None, **extra: object):
    spec = spec or RunSpec(image_tokens=16)
    scan_library(catalog, root)
    config = fake_config(**extra)
    plan = plan_run(catalog, str(root), catalog.photos_under(root), spec, config)
    return plan, config


def results_by_name(catalog: Catalog, run_id: int) -> dict[str, object]:
    return {Path(r.path).name: r for r in catalog.results(run_id=run_id)}


def test_run_tags_every_photo_once_with_clean_keywords_and_provenance(tmp_path: Path) -> None:
    root = make_library(tmp_path / "lib", 12)
    seen: list[RunProgress] = []
    with open_catalog() as catalog:
        plan, config = setup_run(catalog, root, delay=0.1)  # slow enough for a speed to show
        assert (plan.added, plan.resumed, plan.already_done) == (12, False, 0)
        engine = FakeEngine(config)
        counts = execute_run(catalog, plan.run_id, engine, on_progress=seen.append)
        assert (counts.total, counts.done, counts.failed, counts.pending) == (12, 12, 0, 0)
        assert len(engine.requests) == 12
        results = catalog.results(run_id=plan.run_id)
        assert len({r.photo_id for r in results}) == 12
        first = results[0]
        assert first.review == "new" and first.caption.startswith("A ") and first.title
        assert "2024" not in first.keywords and "keywords" not in first.keywords
        assert sum(1 for k in first.keywords if k.casefold() == "square") == 1
        assert len(first.keywords) == 3  # colour (plural merged), Square, "tint n"
        assert (first.engine, first.model, first.task, first.language) == (
            "gguf",
            "fake-model.gguf",
            "keywords",
            "English",
        )
        assert first.seconds is not None and len(first.prompt_hash) == 16
        run = get_run(catalog, plan.run_id)
        assert run.state == "done" and run.finished_at is not None
        # Progress: photos/minute and an ETA while running, everything finished at the end.
        assert seen[-1].finished == 12 and seen[-1].photos_per_minute and seen[-1].photos_per_minute > 0
        assert any(p.eta_seconds is not None for p in seen[:-1])
        assert "photos/min" in seen[-1].describe() and "run " in seen[-1].describe()


@pytest.mark.parametrize(
    ("landed", "seconds", "remaining", "expected"),
    [
        (0, 0.0, 10, (None, None)),  # nothing landed after the first photo yet
        (RATE_AFTER_PHOTOS - 1, 2.0, 10, (None, None)),  # too few photos, too short a time
        (RATE_AFTER_PHOTOS, 3.0, 10, (60.0, 10.0)),  # 3 photos in 3 s: 60/min, 10 left take 10 s
        (5, RATE_MIN_SECONDS / 2, 10, (None, None)),  # five unreadable photos failing at once are no speed
        (1, RATE_AFTER_SECONDS, 5, (3.0, 100.0)),  # one slow photo, but long enough to trust
        (4, 0.0, 5, (None, None)),  # no working time (a clock that did not move)
    ],
)
def test_rate_and_eta_wait_for_a_real_rate(landed, seconds, remaining, expected) -> None:
    rate, eta = rate_and_eta(landed, seconds, remaining)
    if expected[0] is None:
        assert (rate, eta) == expected
    else:
        assert (rate, eta) == pytest.approx(expected)


def test_the_rate_leaves_out_the_time_paused(tmp_path: Path) -> None:
    """A run paused for seconds mid-way reports the speed it tags at, not one the pause dragged down; the
    report while it waits says it is paused, with no time left."""
    root = make_library(tmp_path / "lib", 10)
    seen: list[RunProgress] = []
    controller = RunController()
    pause_s = 4.0

    def on_progress(progress: RunProgress) -> None:
        seen.append(progress)
        if progress.finished == 4 and not progress.paused and not any(p.paused for p in seen):
            controller.pause()
            threading.Timer(pause_s, controller.resume).start()

    with open_catalog() as catalog:
        plan, config = setup_run(catalog, root, delay=0.1)
        execute_run(catalog, plan.run_id, FakeEngine(config), controller=controller, on_progress=on_progress)
    paused = [p for p in seen if p.paused]
    assert len(paused) == 1 and paused[0].finished == 4 and paused[0].eta_seconds is None
    rated = [p for p in seen if p.photos_per_minute is not None]
    assert rated[0].finished >= RATE_AFTER_PHOTOS
    last = seen[-1]
    # 0.1 s a photo is at most 600/min; with the pause counted it would be under 10 / (1 + 4) s = 120/min.
    assert last.photos_per_minute > 200, last.photos_per_minute
    assert last.elapsed >= pause_s  # elapsed stays wall time: the run did take that long


def test_done_photos_are_skipped_unless_redo(tmp_path: Path) -> None:
    root = make_library(tmp_path / "lib", 6)
    spec = RunSpec(image_tokens=16)
    with open_catalog() as catalog:
        plan, config = setup_run(catalog, root)
        execute_run(catalog, plan.run_id, FakeEngine(config))
        Image.new("RGB", (64, 64), (1, 2, 3)).save(root / "new.jpg")
        scan_library(catalog, root)
        again = plan_run(catalog, str(root), catalog.photos_under(root), spec, config)
        assert (again.added, again.already_done, again.resumed) == (1, 6, False)
        engine = FakeEngine(config)
        execute_run(catalog, again.run_id, engine)
        assert [Path(request.images[0].source).name for request in engine.requests] == ["new.jpg"]
        # Every photo is done now: no run at all.
        assert plan_run(catalog, str(root), catalog.photos_under(root), spec, config) == RunPlan(
            run_id=None, resumed=False, added=0, already_done=7
        )
        redo = plan_run(catalog, str(root), catalog.photos_under(root), spec, config, redo=True)
        assert (redo.added, redo.already_done) == (7, 0)
        engine = FakeEngine(config)
        assert execute_run(catalog, redo.run_id, engine).done == 7
        assert len({request.images[0].source for request in engine.requests}) == 7
        # Each photo was tagged again: the new result is current, the first one a version.
        rows = catalog.db.execute("SELECT COUNT(*), SUM(current) FROM results GROUP BY photo_id").fetchall()
        assert len(rows) == 7 and set(rows) == {(2, 1)}
        # Another model is another result: not skipped.
        other = config.model_copy(update={"model": "other.gguf"})
        assert plan_run(catalog, str(root), catalog.photos_under(root), spec, other).added == 7


def test_bad_photos_fail_with_reason_and_the_run_goes_on(tmp_path: Path) -> None:
    root = make_library(tmp_path / "lib", 5)
    with open_catalog() as catalog:
        (root / "zero.jpg").write_bytes(b"")
        plan, config = setup_run(catalog, root)
        assert plan.added == 5  # the unreadable file was never queued
        victim = root / "sub1" / "photo_001.png"
        victim.write_bytes(victim.read_bytes()[:40] + bytes(60))  # damaged after the scan
        counts = execute_run(catalog, plan.run_id, FakeEngine(config))
        assert (counts.done, counts.failed) == (4, 1)
        [(path, error, kind)] = failed_items(catalog, plan.run_id)
        assert path == str(victim) and kind in ("corrupt", "not-an-image") and error
        assert catalog.photo_by_path(str(victim)).status == "unreadable"
        # Not queued again while the file stays as it is; queued again once it is repaired.
        spec = RunSpec(image_tokens=16)
        other = config.model_copy(update={"model": "other.gguf"})
        assert plan_run(catalog, str(root), catalog.photos_under(root), spec, other).added == 4
        Image.new("RGB", (64, 64), colour(1)).save(victim)
        scan_library(catalog, root)
        assert plan_run(catalog, str(root), catalog.photos_under(root), spec, config).added == 1


def test_a_photo_that_crashes_the_engine_host_is_quarantined_by_the_hosts_rule(
    tmp_path: Path, tiny_gguf: tuple[Path, Path]
) -> None:
    """One quarantine rule, the engine host's: the real gguf engine in a real host process dies (SIGABRT) on
    one photo; the run asks again after each crash, and the host refuses the photo after its limit, which the
    run reports as quarantined. The other photos are tagged by the restarted host."""
    root = make_library(tmp_path / "lib", 3)
    poison = root / "sub2" / "photo_002.png"
    model, mmproj = tiny_gguf
    config = EngineConfig(
        engine="gguf",
        model=str(model),
        image_tokens=16,
        options={"mmproj": str(mmproj), "device": "cpu", "threads": 1},
    )
    spec = RunSpec(task="caption", image_tokens=16, sampling={"max_new_tokens": 4, "temperature": 0.0})
    budget = engine_budget(spec.image_tokens, HostedBackend(config).capabilities)
    fault = {FAULT_INJECTION_KEY: {"abort_on_image": prepare_image(poison, budget).sha256}}
    host = HostedBackend(config.model_copy(update={"options": {**config.options, **fault}}))
    events: list[str] = []
    with open_catalog() as catalog:
        scan_library(catalog, root)
        plan = plan_run(catalog, str(root), catalog.photos_under(root), spec, config)
        host.load()
        try:
            counts = execute_run(catalog, plan.run_id, host, on_event=events.append)
        finally:
            host.unload()
        limit = HostPolicy().max_crashes_per_image
        assert (counts.done, counts.failed) == (2, 1)
        [(path, error, kind)] = failed_items(catalog, plan.run_id)
        assert (path, kind) == (str(poison), "quarantined")
        assert error.startswith(f"Skipped {poison}: it crashed the gguf engine {limit} times")
        assert host.crashes == limit == sum("killed by SIGABRT" in event for event in events)
        attempts = catalog.db.execute(
            "SELECT i.attempts FROM run_items i JOIN photos p ON p.id = i.photo_id WHERE p.path = ?",
            (str(poison),),
        ).fetchone()[0]
        assert attempts == limit + 1  # each crash, then the refusal
        assert all(r.caption for r in catalog.results(run_id=plan.run_id))


def test_invalid_output_is_retried_once_then_kept_for_review(tmp_path: Path) -> None:
    root = make_library(tmp_path / "lib", 3)
    with open_catalog() as catalog:
        plan, config = setup_run(catalog, root, invalid_on=[key(1)])
        engine = FakeEngine(config)
        execute_run(catalog, plan.run_id, engine)
        result = results_by_name(catalog, plan.run_id)["photo_001.png"]
        assert result.review == "needs_review" and "invalid output" in result.review_reason
        assert result.caption == "" and result.keywords == ()
        assert sum(1 for r in engine.requests if r.images[0].source.endswith("photo_001.png")) == 2
        retry = [r for r in engine.requests if r.images[0].source.endswith("photo_001.png")][1]
        assert retry.options.temperature > 0 and retry.options.seed == 1
        assert results_by_name(catalog, plan.run_id)["photo_000.png"].review == "new"


def test_same_caption_on_neighbours_is_flagged_after_one_retry(tmp_path: Path) -> None:
    root = make_library(tmp_path / "lib", 6)
    with open_catalog() as catalog:
        plan, config = setup_run(catalog, root, same_caption=True)
        engine = FakeEngine(config)
        counts = execute_run(catalog, plan.run_id, engine)
        results = catalog.results(run_id=plan.run_id)
        assert counts.needs_review == 6
        assert all(r.review == "needs_review" and "same caption" in r.review_reason for r in results)
        # Photos 1-2 are fine (no repeats yet), from the third on each is retried once.
        assert len(engine.requests) == 6 + 4


class _BreaksOnRetries(FakeEngine):
    """The stand-in engine whose second and later answers for a photo break off mid-answer (a server that died
    while the same-caption retry was being answered)."""

    seen: list[str]

    def generate(self, request: GenerationRequest, cancel: CancelToken | None = None) -> Iterator[str]:
        source = str(request.images[0].source)
        self.seen = getattr(self, "seen", [])
        self.seen.append(source)
        if self.seen.count(source) > 1:
            raise GenerationError("The connection to the server broke while it was answering.")
        return (yield from super().generate(request, cancel))


def test_a_failed_same_caption_retry_keeps_the_first_answer_and_the_run(tmp_path: Path) -> None:
    root = make_library(tmp_path / "lib", 4)
    with open_catalog() as catalog:
        plan, config = setup_run(catalog, root, same_caption=True)
        events: list[str] = []
        counts = execute_run(catalog, plan.run_id, _BreaksOnRetries(config), on_event=events.append)
        results = catalog.results(run_id=plan.run_id)
        assert counts.done == 4 and len(results) == 4  # the run went on past the failed retries
        assert all(r.caption == "A photo of something." for r in results)
        assert all("same caption" in (r.review_reason or "") for r in results)  # flagged, not lost
        assert sum("asking again failed" in event for event in events) == 2


def test_wrong_language_needs_review(tmp_path: Path) -> None:
    root = make_library(tmp_path / "lib", 2)
    with open_catalog() as catalog:
        plan, config = setup_run(catalog, root, language="german")
        execute_run(catalog, plan.run_id, FakeEngine(config))
        reasons = {r.review_reason for r in catalog.results(run_id=plan.run_id)}
        assert reasons == {"caption is not in English"}
        german = plan_run(
            catalog,
            str(root),
            catalog.photos_under(root),
            RunSpec(language="German", image_tokens=16),
            config,
            redo=True,
        )
        execute_run(catalog, german.run_id, FakeEngine(config))
        assert {r.review for r in catalog.results(run_id=german.run_id)} == {"new"}


def test_cancel_then_resume_finishes_exactly_once(tmp_path: Path) -> None:
    root = make_library(tmp_path / "lib", 10)
    controller = RunController()

    def stop_after_four(progress: RunProgress) -> None:
        if progress.done == 4:
            controller.cancel()

    with open_catalog() as catalog:
        plan, config = setup_run(catalog, root)
        first = FakeEngine(config)
        with pytest.raises(Cancelled):
            execute_run(catalog, plan.run_id, first, controller=controller, on_progress=stop_after_four)
        assert get_run(catalog, plan.run_id).state == "paused"
        assert run_counts(catalog, plan.run_id).done == 4
        resumed = plan_run(catalog, str(root), catalog.photos_under(root), RunSpec(image_tokens=16), config)
        assert (resumed.run_id, resumed.resumed, resumed.added) == (plan.run_id, True, 0)
        second = FakeEngine(config)
        counts = execute_run(catalog, plan.run_id, second)
        assert counts.done == 10 and len(second.requests) == 6
        assert len(catalog.results(run_id=plan.run_id)) == 10


def test_pause_waits_and_resume_continues(tmp_path: Path) -> None:
    root = make_library(tmp_path / "lib", 4)
    controller = RunController()
    paused_at: list[float] = []

    def pause_once(progress: RunProgress) -> None:
        if progress.done == 2 and not paused_at:
            controller.pause()
            paused_at.append(time.monotonic())
            threading.Timer(0.5, controller.resume).start()

    with open_catalog() as catalog:
        plan, config = setup_run(catalog, root)
        counts = execute_run(
            catalog, plan.run_id, FakeEngine(config), controller=controller, on_progress=pause_once
        )
        assert counts.done == 4 and time.monotonic() - paused_at[0] >= 0.5


def test_batching_engine_gets_batches(tmp_path: Path) -> None:
    root = make_library(tmp_path / "lib", 10)
    with open_catalog() as catalog:
        plan, config = setup_run(catalog, root, RunSpec(image_tokens=16, batch_size=4))
        engine = BatchingFakeEngine(config)
        counts = execute_run(catalog, plan.run_id, engine)
        assert counts.done == 10 and engine.batches == [4, 4, 2] and engine.requests == []


def test_a_batch_landing_at_once_is_not_an_instant_speed(tmp_path: Path) -> None:
    """Four answers of a batch land within milliseconds; the speed still counts the time the batch took."""
    root = make_library(tmp_path / "lib", 12)
    seen: list[RunProgress] = []
    with open_catalog() as catalog:
        plan, config = setup_run(catalog, root, RunSpec(image_tokens=16, batch_size=4), delay=0.1)
        execute_run(catalog, plan.run_id, BatchingFakeEngine(config), on_progress=seen.append)
    rates = [p.photos_per_minute for p in seen if p.photos_per_minute is not None]
    assert rates, "12 photos at 0.1 s each give a speed"
    assert max(rates) <= 600 * 1.05  # 0.1 s a photo: 600/min at the very most


def test_vocabulary_constrains_the_schema_and_the_keywords(tmp_path: Path) -> None:
    root = make_library(tmp_path / "lib", 3)
    spec = RunSpec(image_tokens=16, vocabulary=("Square", "red", "blue"), synonyms={"tint 1": "red"})
    with open_catalog() as catalog:
        plan, config = setup_run(catalog, root, spec)
        engine = FakeEngine(config)
        execute_run(catalog, plan.run_id, engine)
        schema = engine.requests[0].json_schema
        assert schema["properties"]["keywords"]["items"]["enum"] == ["Square", "blue", "red"]
        for result in catalog.results(run_id=plan.run_id):
            assert set(result.keywords) <= {"Square", "red", "blue"} and "Square" in result.keywords


CHILD = """
import sys
from pathlib import Path
from captioneer.desktop.library.catalog import open_catalog
from captioneer.desktop.library.runs import RunSpec, execute_run, plan_run
from captioneer.desktop.library.scanner import scan_library
from tests.fakes.tagging_engine import FakeEngine, fake_config
root, log = Path(sys.argv[1]), sys.argv[2]
catalog = open_catalog()
scan_library(catalog, root)
config = fake_config(delay=0.02, log=log)
plan = plan_run(catalog, str(root), catalog.photos_under(root), RunSpec(image_tokens=16), config)
execute_run(catalog, plan.run_id, FakeEngine(config))
print("finished", flush=True)
"""


def test_sigkill_at_any_moment_then_resume_processes_each_photo_once(
    tmp_path: Path, captioneer_home: Path
) -> None:
    root = make_library(tmp_path / "lib", 40)
    log = tmp_path / "generations.log"
    env = {**os.environ, "CAPTIONEER_HOME": str(captioneer_home), "PYTHONPATH": str(REPO)}
    for lines, extra_wait in ((6, 0.0), (15, 0.011), (24, 0.023)):
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(root), str(log)], env=env, cwd=REPO)
        deadline = time.monotonic() + 30
        while len(read_log(log)) < lines and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.005)
        time.sleep(extra_wait)  # land before, during and after a result's commit
        child.send_signal(signal.SIGKILL)
        child.wait()
    db = sqlite3.connect(captioneer_home / "data" / "catalog.sqlite")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    done_before = db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    db.close()
    assert 0 < done_before < 40, "the kills should land mid-run"
    finished = subprocess.run(
        [sys.executable, "-c", CHILD, str(root), str(log)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "finished" in finished.stdout, finished.stderr
    with open_catalog() as catalog:
        rows = catalog.db.execute("SELECT photo_id, COUNT(*) FROM results GROUP BY photo_id").fetchall()
        assert len(rows) == 40 and all(count == 1 for _, count in rows)
        assert catalog.db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 1
        assert run_counts(catalog, 1).done == 40
    generations = read_log(log)
    # Every photo was asked at least once, and nothing else was; only a photo in flight at a kill was asked
    # again (at most one per kill).
    assert set(generations) == {str(path) for path in root.rglob("*.png")}
    assert len(generations) <= 40 + 3


def test_moved_folder_keeps_results_and_is_not_tagged_again(tmp_path: Path) -> None:
    root = make_library(tmp_path / "lib", 5)
    with open_catalog() as catalog:
        plan, config = setup_run(catalog, root)
        execute_run(catalog, plan.run_id, FakeEngine(config))
        captions = {Path(r.path).name: r.caption for r in catalog.results()}
        moved = tmp_path / "Archive" / "lib"
        moved.parent.mkdir()
        root.rename(moved)
        scan_library(catalog, moved.parent)
        again = plan_run(
            catalog, str(moved.parent), catalog.photos_under(moved.parent), RunSpec(image_tokens=16), config
        )
        assert (again.run_id, again.already_done) == (None, 5)
        assert {Path(r.path).name: r.caption for r in catalog.results()} == captions
        assert all(r.path.startswith(str(moved)) for r in catalog.results())


def test_an_engine_that_never_started_leaves_no_empty_run(tmp_path: Path) -> None:
    root = make_library(tmp_path / "lib", 3)
    with open_catalog() as catalog:
        plan, config = setup_run(catalog, root)
        abandon_run(catalog, plan.run_id, "The engine did not start: model missing")
        assert catalog.db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 0
        plan, config = setup_run(catalog, root)
        controller = RunController()

        def stop_after_one(progress: RunProgress) -> None:
            if progress.done == 1:
                controller.cancel()

        with pytest.raises(Cancelled):
            execute_run(
                catalog, plan.run_id, FakeEngine(config), controller=controller, on_progress=stop_after_one
            )
        abandon_run(catalog, plan.run_id, "The engine did not start: model missing")
        run = get_run(catalog, plan.run_id)
        assert run.state == "paused" and "did not start" in run.message


class ForgetfulFakeEngine(FakeEngine):
    """The stand-in without its request log, so only the run itself could grow."""

    def generate(self, request, cancel=None):
        yield from super().generate(request, cancel)
        self.requests.clear()


def _resident_kib() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads /proc")
def test_long_run_keeps_memory_files_and_threads_flat(tmp_path: Path) -> None:
    root = tmp_path / "many"
    root.mkdir()
    for i in range(1200):
        Image.new("RGB", (8, 8), (i % 256, (i // 256) * 40, 7)).save(root / f"{i:05d}.png")
    samples: dict[int, tuple[int, int, int]] = {}

    def sample(progress: RunProgress) -> None:
        if progress.done in (300, 1200):
            files = len(os.listdir("/proc/self/fd"))
            samples[progress.done] = (_resident_kib(), files, threading.active_count())

    with open_catalog() as catalog:
        plan, config = setup_run(catalog, root)
        counts = execute_run(catalog, plan.run_id, ForgetfulFakeEngine(config), on_progress=sample)
    assert counts.done == 1200
    (rss_early, fds_early, threads_early), (rss_late, fds_late, threads_late) = samples[300], samples[1200]
    # A leak grows; the pytest process around the run may close files or end threads of earlier tests.
    assert fds_late <= fds_early and threads_late <= threads_early
    growth = rss_late - rss_early
    assert growth < 8 * 1024, f"resident memory grew by {growth} KiB over 900 photos"
