"""The control map: which compliance controls a decision evidences.

The mapping is data (``bot/data/controls.toml``), loaded and validated once at
start-up and handed in. Ids look like ``SOC2:CC6.2``, ``ISO27001:A.5.18``,
``GDPR:Art.32``, ``EUAIA:Art.14``, ``ISO42001:A.6.2.8``.
"""

from __future__ import annotations

import fnmatch
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any


class ControlMapError(ValueError):
    """The control map file is malformed or names an undeclared control."""


@dataclass(frozen=True)
class Control:
    id: str
    title: str
    framework: str = ""


@dataclass(frozen=True)
class ControlMap:
    controls: Mapping[str, Control]
    outcomes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    rules: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    always: tuple[str, ...] = ()
    bot_subject_always: tuple[str, ...] = ()
    bot_subject_outcomes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    # ------------------------------------------------------------------ loading

    @classmethod
    def load_default(cls) -> ControlMap:
        text = resources.files("bot.data").joinpath("controls.toml").read_text(encoding="utf-8")
        return cls.from_toml(text, source="bot/data/controls.toml")

    @classmethod
    def load(cls, path: str | Path) -> ControlMap:
        path = Path(path)
        return cls.from_toml(path.read_text(encoding="utf-8"), source=str(path))

    @classmethod
    def from_toml(cls, text: str, source: str = "<control map>") -> ControlMap:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ControlMapError(f"{source}: {exc}") from exc
        return cls.from_dict(data, source=source)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<control map>") -> ControlMap:
        declared = data.get("controls")
        if not isinstance(declared, Mapping) or not declared:
            raise ControlMapError(f"{source}: [controls] must declare at least one control")
        controls: dict[str, Control] = {}
        for cid, spec in declared.items():
            if not isinstance(spec, Mapping) or not isinstance(spec.get("title"), str) or not spec["title"]:
                raise ControlMapError(f"{source}: controls.{cid!r} needs a non-empty title")
            if ":" not in cid:
                raise ControlMapError(f"{source}: control id {cid!r} must be FRAMEWORK:ID, e.g. 'SOC2:CC6.2'")
            controls[cid] = Control(id=cid, title=spec["title"], framework=str(spec.get("framework", "")))

        def ids(value: Any, where: str) -> tuple[str, ...]:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ControlMapError(f"{source}: {where} must be a list of control ids")
            unknown = [v for v in value if v not in controls]
            if unknown:
                raise ControlMapError(
                    f"{source}: {where} names undeclared control(s) {', '.join(unknown)}; "
                    "declare them under [controls]"
                )
            return tuple(dict.fromkeys(value))

        def table(value: Any, where: str) -> dict[str, tuple[str, ...]]:
            if value is None:
                return {}
            if not isinstance(value, Mapping):
                raise ControlMapError(f"{source}: [{where}] must be a table")
            return {str(k): ids(v, f"{where}.{k}") for k, v in value.items()}

        bot = data.get("bot_subject") or {}
        if not isinstance(bot, Mapping):
            raise ControlMapError(f"{source}: [bot_subject] must be a table")
        known_top = {"controls", "outcomes", "rules", "always", "bot_subject"}
        extra = sorted(set(data) - known_top)
        if extra:
            raise ControlMapError(f"{source}: unknown key(s) {', '.join(extra)}")
        return cls(
            controls=controls,
            outcomes=table(data.get("outcomes"), "outcomes"),
            rules=table(data.get("rules"), "rules"),
            always=ids(data.get("always", []), "always"),
            bot_subject_always=ids(bot.get("always", []), "bot_subject.always"),
            bot_subject_outcomes=table(bot.get("outcomes"), "bot_subject.outcomes"),
        )

    # ------------------------------------------------------------------ queries

    def for_outcome(
        self, outcome: str, rule: str | None = None, *, bot_subject: bool = False
    ) -> tuple[str, ...]:
        """Controls a decision with this outcome (and rule) evidences, in declaration order."""
        found: list[str] = list(self.outcomes.get(str(outcome), ()))
        if rule is not None:
            for pattern, ids in self.rules.items():
                if pattern == rule or (pattern.endswith("*") and fnmatch.fnmatchcase(rule, pattern)):
                    found.extend(ids)
        if bot_subject:
            found.extend(self.bot_subject_outcomes.get(str(outcome), ()))
            found.extend(self.bot_subject_always)
        found.extend(self.always)
        order = {cid: i for i, cid in enumerate(self.controls)}
        return tuple(sorted(dict.fromkeys(found), key=order.__getitem__))

    def title(self, control_id: str) -> str:
        """The control's subject, e.g. "authorising and removing users". KeyError if undeclared."""
        return self.controls[control_id].title

    def describe(self, control_id: str) -> str:
        """``"SOC2:CC6.2 — authorising and removing users"``, or the bare id if undeclared."""
        control = self.controls.get(control_id)
        return f"{control_id} — {control.title}" if control else control_id

    def known(self, control_id: str) -> bool:
        return control_id in self.controls

    def unknown(self, control_ids: Iterable[str]) -> list[str]:
        return [cid for cid in control_ids if cid not in self.controls]

    def validate(self, control_ids: Iterable[str], where: str = "controls") -> tuple[str, ...]:
        """Check ids named elsewhere (a policy rule's ``controls``); raise naming the unknown ones."""
        ids = tuple(control_ids)
        unknown = self.unknown(ids)
        if unknown:
            raise ControlMapError(
                f"{where}: unknown control id(s) {', '.join(unknown)}; known: {', '.join(self.controls)}"
            )
        return ids
