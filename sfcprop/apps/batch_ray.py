"""`sfcprop batch --engine ray`: a Ray Data dataset with one row per video, mapped by
`map_batches` over `VideoActor` (one batch = one video), `workers` actors (an
`ActorPoolStrategy` of that size: `concurrency=workers` before Ray 2.51), each of
which builds the model once and runs the videos it is given as the serial engine does
(staging folders, the summary row, failures recorded). `ray.init()` without arguments
joins the cluster of `RAY_ADDRESS` (or of a running `ray start`), else starts a local one;
an existing `ray.init(...)` of the caller is used as it is. `DIR` must be a folder every
node sees (a shared file system). Ray is an extra: pip install "sfcprop[ray]".
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import asdict, fields
from pathlib import Path

from sfcprop.apps.batch_worker import BatchSettings, VideoRow, Worker
from sfcprop.apps.sources import VideoJob

RAY_EXTRA = 'pip install "sfcprop[ray]"'


def require_ray():
    """The `ray` module with Ray Data; an ImportError naming the extra without them."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:
        missing = e.name or "ray"
        message = f"--engine ray needs Ray Data ({missing} is missing): {RAY_EXTRA}"
        raise ImportError(message) from None
    return ray


class VideoActor:
    """A Ray Data callable class: the model built once per actor (`Worker.prepare`); each
    batch of video rows is run and returned as its summary rows (`{"row": [json]}`)."""

    def __init__(
        self, settings: BatchSettings, out: str, tasks: list[str], threads: float | None = None
    ) -> None:
        if threads:
            import torch

            torch.set_num_threads(max(1, int(threads)))
        self.worker = Worker(settings, out)
        self.worker.prepare(tasks)

    def __call__(self, batch: dict) -> dict:
        names = [f.name for f in fields(VideoJob)]
        rows = []
        for i in range(len(batch["name"])):
            job = VideoJob(**{n: str(batch[n][i]) for n in names})
            row = self.worker.run(job)
            rows.append(json.dumps(asdict(row)) if row is not None else "")
        return {"row": rows}


def run_ray(
    settings: BatchSettings,
    out: Path,
    todo: list[VideoJob],
    workers: int,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    progress: bool = False,
    on_row: Callable[[VideoRow], None] | None = None,
) -> list[VideoRow]:
    """Run `todo` on `workers` Ray actors (`num_cpus` / `num_gpus` each; default 1 CPU);
    returns the rows of the videos run (those another run finished meanwhile left out)."""
    ray = require_ray()
    if not todo:
        return []
    if not progress:  # Ray Data logs its progress where no bar shows
        logging.getLogger("ray.data").setLevel(logging.WARNING)
    started = not ray.is_initialized()
    if started:
        ray.init(logging_level="warning", log_to_driver=False)
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = progress
        items = [asdict(j) for j in todo]
        ds = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            VideoActor,
            fn_constructor_kwargs={
                "settings": settings,
                "out": str(out),
                "tasks": sorted({j.task for j in todo}),
                "threads": num_cpus,
            },
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=workers),  # `concurrency=workers`
            num_cpus=num_cpus or 1,
            num_gpus=num_gpus or 0,
        )
        rows = []
        try:
            for item in ds.iter_rows():
                if item["row"]:
                    row = VideoRow(**json.loads(item["row"]))
                    rows.append(row)
                    if on_row is not None:
                        on_row(row)
        except ray.exceptions.RayError as e:
            raise RuntimeError(f"the Ray engine failed: {_last_error(e)}") from None
        return rows
    finally:
        if started:
            ray.shutdown()


def _last_error(e: BaseException) -> str:
    """The innermost `SomeError: message` of a Ray error (whose text holds the remote
    traceback), else its first line."""
    text = str(e)
    found = re.findall(r"(\w+(?:Error|Exception|Interrupt): .*?)(?:\n|$)", text)
    return found[-1].strip() if found else (text.splitlines() or [type(e).__name__])[0]
