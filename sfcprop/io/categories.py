"""The category of each exported object: one class-agnostic category by default, or a
mapping (a JSON file: `Categories.from_json`, see docs/exports.md)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_CATEGORY = {"id": 1, "name": "object"}


@dataclass(frozen=True)
class Categories:
    """Each object's category. table: COCO's `categories` list; default: the category id
    of objects not named (None: every object must be named); objects: `{object: id}` in
    every video; videos: `{video: {object: id}}`, before `objects`."""

    table: list[dict] = field(default_factory=lambda: [dict(DEFAULT_CATEGORY)])
    default: int | None = DEFAULT_CATEGORY["id"]
    objects: dict[int, int] = field(default_factory=dict)
    videos: dict[str, dict[int, int]] = field(default_factory=dict)
    source: str = "the categories"

    def of(self, video: str, obj: int) -> int:
        """The category id of object `obj` of `video`."""
        found = self.videos.get(video, {}).get(obj, self.objects.get(obj, self.default))
        if found is None:
            raise ValueError(
                f"object {obj} of video {video!r} has no category in {self.source} (name it, "
                'or give "*" in "objects" for every other object)'
            )
        return found

    @classmethod
    def from_json(cls, data, source: str = "the categories") -> Categories:
        """From a mapping such as `{"objects": {"1": "person", "*": "object"}, "videos":
        {"<video>": {"objects": {"2": {"category": "dog"}}}}, "categories": [{"id": 1,
        "name": "person"}, ...]}`: an object's category is named by its video's entry,
        else by `objects` ("*": any other object). A name is a string or `{"category":
        name}` (YouTube-VOS's `meta.json` reads as it is). Without `categories`, the names
        are numbered 1.. in sorted order; with it, each name must be one of its."""
        if not isinstance(data, Mapping) or not ({"objects", "videos"} & set(data)):
            raise ValueError(
                f'{source}: expected a JSON object with "objects" and/or "videos" (see '
                "docs/exports.md)"
            )
        named = {"*": _names(data.get("objects", {}), f"{source}: objects", star=True)}
        videos = data.get("videos", {})
        if not isinstance(videos, Mapping):
            raise ValueError(f'{source}: "videos" must map video names to their objects')
        for video, entry in videos.items():
            objs = entry.get("objects", {}) if isinstance(entry, Mapping) else None
            named[video] = _names(objs, f"{source}: videos/{video}")
        table = _table(data.get("categories"), named, source)
        ids = {c["name"]: c["id"] for c in table}
        every = named.pop("*")
        star = every.pop("*", None)
        return cls(
            table,
            None if star is None else ids[star],
            {int(k): ids[v] for k, v in every.items()},
            {v: {int(k): ids[n] for k, n in objs.items()} for v, objs in named.items()},
            source,
        )


def _names(objects, where: str, star: bool = False) -> dict[str, str]:
    """`{object id (or "*" where `star`): category name}` of one "objects" mapping."""
    if not isinstance(objects, Mapping):
        raise ValueError(f"{where}: expected a mapping of object ids to category names")
    out = {}
    for key, value in objects.items():
        if not (str(key).isdigit() or (star and key == "*")):
            also = ', or "*"' if star else ""
            raise ValueError(f"{where}: {key!r} is not an object id (a number{also})")
        name = value.get("category") if isinstance(value, Mapping) else value
        if not isinstance(name, str) or not name:
            raise ValueError(f"{where}/{key}: expected a category name, got {value!r}")
        out[str(key)] = name
    return out


def _table(given, named: dict[str, dict[str, str]], source: str) -> list[dict]:
    """COCO's `categories`: as given (checked), or the names used, numbered 1.."""
    used = sorted({n for objs in named.values() for n in objs.values()})
    if given is None:
        return [{"id": i, "name": n} for i, n in enumerate(used, start=1)]
    ok = isinstance(given, list) and all(
        isinstance(c, Mapping) and isinstance(c.get("id"), int) and isinstance(c.get("name"), str)
        for c in given
    )
    if not ok:
        raise ValueError(f'{source}: "categories" must be a list of {{"id": int, "name": str}}')
    known = {c["name"] for c in given}
    if len(known) != len(given) or len({c["id"] for c in given}) != len(given):
        raise ValueError(f'{source}: "categories" repeats an id or a name')
    missing = [n for n in used if n not in known]
    if missing:
        raise ValueError(f'{source}: categories {missing} are not in "categories"')
    return [dict(c) for c in given]


def read_categories(path: str | os.PathLike) -> Categories:
    """`Categories.from_json` of a JSON file (a YouTube-VOS `meta.json` reads as it is)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"no such categories file: {path}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path} is not a JSON file: {e}") from None
    return Categories.from_json(data, str(path))
