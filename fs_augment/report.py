"""``fs-augment report``: one self-contained HTML page on what a logged model is served.

:func:`build_report` loads a model logged by :func:`fs_augment.mlflow.log_model`, samples entities
that the offline store of the serving environment has, looks their features up **online** through
the model's own recipe (``max_age`` applied, as a served model applies it) and sets, feature by
feature, the training statistics the model carries (``feature_stats_``) beside the served values:

* a summary table at the top, worst first: features whose online and offline values disagree
  (by mismatch rate), then by the largest of the change of the missing rate, the distribution shift
  and the share of stale entities;
* a section per feature with a chart (inline SVG): for numbers the training and served quantiles
  (p05 to p95 box, median, min and max) on one axis; for text the shares of the top categories;
* the missing rates, the online/offline skew of :func:`fs_augment.check_skew` when it is available,
  and the freshness of the namespace's online event times against ``max_age``.

The page loads nothing at view time: no script, no stylesheet or font from elsewhere, a
Content-Security-Policy that forbids it, and every text from data escaped with :func:`html.escape`.
"""

from __future__ import annotations

import base64
import hashlib
import html
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fs_augment import dtypes
from fs_augment.errors import FeatureNotFoundError, FsAugmentError
from fs_augment.keys import TIMESTAMP_COLUMN, entity_texts, parse_event_time
from fs_augment.recipe import FeatureGroup

__all__ = ["FeatureReport", "build_report", "collect", "distribution_shift", "render", "write_report"]

_TRAIN_COLOUR, _SERVED_COLOUR = "#4c72b0", "#dd8452"


@dataclass
class FeatureReport:
    """What the report says of one feature (``namespace:feature``)."""

    feature: str
    output_name: str
    kind: str
    training: dict[str, Any]
    served: dict[str, Any]
    sampled: int
    max_age: float | None = None
    stale: int | None = None
    with_time: int = 0
    ages: list[float] = field(default_factory=list)
    skew: dict[str, Any] | None = None

    @property
    def missing_shift(self) -> float:
        """Served minus training missing rate."""
        return float(self.served.get("missing_rate", 0.0) - self.training.get("missing_rate", 0.0))

    @property
    def shift(self) -> float | None:
        """Distribution shift: for numbers the median's move in units of the training p05-p95 range,
        for text the total variation distance between the category shares; None without values."""
        return distribution_shift(self.training, self.served, self.kind)

    @property
    def stale_rate(self) -> float | None:
        """The share of sampled entities with an event time older than ``max_age``."""
        if self.max_age is None or not self.with_time:
            return None
        return (self.stale or 0) / self.with_time

    @property
    def mismatch_rate(self) -> float:
        """The online/offline mismatch rate of :func:`fs_augment.check_skew` (0 where not measured)."""
        return float(self.skew.get("mismatch_rate") or 0.0) if self.skew is not None else 0.0

    @property
    def severity(self) -> float:
        """The largest of skew, missing-rate change, shift (capped at 1) and stale share."""
        return max(self.mismatch_rate, abs(self.missing_shift), min(self.shift or 0.0, 1.0), self.stale_rate or 0.0)

    @property
    def order(self) -> tuple[float, float]:
        """What orders the summary, worst first: online/offline disagreement (the store contradicts itself),
        then :attr:`severity`."""
        return self.mismatch_rate, self.severity


def distribution_shift(training: Mapping[str, Any], served: Mapping[str, Any], kind: str) -> float | None:
    """How far served values moved from training ones (0 is none).

    Examples
    --------
    >>> distribution_shift({"top_values": {"KR": 1.0}}, {"top_values": {"KR": 0.5, "US": 0.5}}, "str")
    0.5
    >>> distribution_shift({"p05": 0, "p50": 5, "p95": 10}, {"p50": 7}, "int")
    0.2
    """
    if kind in ("int", "float"):
        if "p50" not in training or "p50" not in served:
            return None
        width = training["p95"] - training["p05"] or 1.0
        return float(abs(served["p50"] - training["p50"]) / abs(width))
    a, b = training.get("top_values"), served.get("top_values")
    if not a or not b:
        return None
    return float(0.5 * sum(abs(a.get(k, 0.0) - b.get(k, 0.0)) for k in set(a) | set(b)))


# --- collecting ---------------------------------------------------------------------------

def _sample_entities(adapter: Any, groups: Sequence[FeatureGroup], sample: int, seed: int) -> pd.DataFrame:
    """Up to ``sample`` entities per entity column, drawn from the offline store's latest rows."""
    if adapter.offline is None:
        raise FsAugmentError(f"environment {adapter.env!r} has no offline store (offline_store_uri) to sample "
                             "entities from")
    columns: dict[str, pd.Series] = {}
    for group in groups:
        if group.entity_column in columns:
            continue
        keys = adapter.offline.read_latest(group).iloc[:, 0].dropna().drop_duplicates()
        columns[group.entity_column] = keys.sample(min(sample, len(keys)), random_state=seed).reset_index(drop=True)
    size = max((len(c) for c in columns.values()), default=0)
    return pd.DataFrame({k: v.reindex(range(size)) for k, v in columns.items()})


def _event_ages(adapter: Any, group: FeatureGroup, spine: pd.DataFrame, now: pd.Timestamp) -> list[float]:
    """Ages in seconds of the sampled entities' online event times (unreadable ones count as infinitely old)."""
    from fs_augment.stores.base import FeatureRequest

    entities = [e for e in entity_texts(spine[group.entity_column], group.entity_column) if e is not None]
    if not entities:
        return []
    try:
        (stamps,), = adapter.online.fetch(
            [FeatureRequest(group.namespace, (TIMESTAMP_COLUMN,), entities, group.entity_column)])
    except FeatureNotFoundError:
        return []
    ages = []
    for stamp in stamps:
        try:
            moment = parse_event_time(stamp)
        except ValueError:
            ages.append(float("inf"))
            continue
        if moment is not None:
            ages.append((now.value - moment) / 1e9)
    return ages


def _skew_rows(recipe: Any, env: str | None, config_dir: Any, sample: int, seed: int) -> dict[str, dict[str, Any]]:
    """``check_skew``'s rows by feature."""
    from fs_augment.skew import check_skew

    frame = check_skew(recipe, env=env, config_dir=config_dir, sample=sample, seed=seed)
    return {str(row["feature"]): {str(k): v for k, v in row.items()} for row in frame.to_dict("records")}


def collect(augmenter: Any, *, env: str | None = None, config_dir: str | os.PathLike[str] | None = None,
            sample: int = 1000, seed: int = 0, now: pd.Timestamp | None = None) -> list[FeatureReport]:
    """The report's figures for one fitted augmenter, in recipe order.

    Parameters
    ----------
    augmenter : FeatureStoreAugmenter
        Fitted; its ``recipe_``, ``feature_kinds_`` and ``feature_stats_`` are read.
    env, config_dir : optional
        Where to look up; default the augmenter's own (pinned or resolved as it would be served).
    sample : int
        Entities per entity column sampled from the offline store.
    seed : int
        Seed of the sample.
    now : Timestamp, optional
        The time event-time ages are measured from (default: now).
    """
    from fs_augment.connections import connect

    if not isinstance(sample, int) or isinstance(sample, bool) or sample < 1:
        raise ValueError(f"sample must be a positive integer, got {sample!r}")
    env = env if env is not None else augmenter.env
    config_dir = config_dir if config_dir is not None else augmenter.config_dir
    now = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    recipe = augmenter.recipe_
    groups = list(recipe.groups)
    skew = _skew_rows(recipe, env, config_dir, sample, seed)
    with connect(env, config_dir) as adapter:
        spine = _sample_entities(adapter, groups, sample, seed)
        values = adapter.lookup_columns(spine, groups, online=len(spine) <= 1000)
        ages = {g.namespace: _event_ages(adapter, g, spine, now) for g in groups}
    sep = augmenter.feature_name_separator
    out = []
    for group in groups:
        keyed = int(spine[group.entity_column].notna().sum())
        group_ages = ages[group.namespace]
        for feature, name in zip(group.features, group.qualified_names, strict=True):
            output = f"{group.namespace}{sep}{feature}"
            kind = augmenter.feature_kinds_[output]
            column = pd.Series(dtypes.coerce(values[name], kind).values).iloc[:keyed]
            served = _summary(column, kind)
            out.append(FeatureReport(
                feature=name, output_name=output, kind=kind, training=dict(augmenter.feature_stats_[output]),
                served=served, sampled=keyed, max_age=group.max_age,
                stale=sum(a > group.max_age for a in group_ages) if group.max_age is not None else None,
                with_time=len(group_ages), ages=group_ages, skew=skew.get(name)))
    return out


def _summary(column: pd.Series, kind: str) -> dict[str, Any]:
    from fs_augment.training_values import summarize

    return summarize(column, kind)


# --- rendering ---------------------------------------------------------------------------------

def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _rate(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def _duration(seconds: float) -> str:
    if seconds == float("inf"):
        return "unreadable"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if abs(seconds) >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def _number(value: float) -> str:
    return f"{value:.4g}"


def _box_chart(report: FeatureReport) -> str:
    """Training and served quantiles of a number on one axis: whiskers min-max, box p05-p95, median."""
    rows = [(label, stats, colour) for label, stats, colour in
            (("training", report.training, _TRAIN_COLOUR), ("served", report.served, _SERVED_COLOUR))
            if "p50" in stats]
    width, left, right, row_h = 560, 80, 20, 34
    height = 30 + row_h * max(len(rows), 1) + 22
    parts = [f'<svg class="chart" role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             f'xmlns="http://www.w3.org/2000/svg"><title>{_e(report.feature)}: quantiles</title>']
    if not rows:
        parts.append(f'<text x="{left}" y="40" font-size="12">no values to draw</text></svg>')
        return "".join(parts)
    low = min(s["min"] for _, s, _ in rows)
    high = max(s["max"] for _, s, _ in rows)
    span = (high - low) or 1.0

    def x(v: float) -> float:
        return float(left + (v - low) / span * (width - left - right))

    for i, (label, s, colour) in enumerate(rows):
        y = 20 + i * row_h
        mid = y + row_h / 2
        parts.append(f'<text x="4" y="{mid + 4:.1f}" font-size="12">{label}</text>'
                     f'<line x1="{x(s["min"]):.1f}" y1="{mid:.1f}" x2="{x(s["max"]):.1f}" y2="{mid:.1f}" '
                     f'stroke="{colour}"/>'
                     f'<rect x="{x(s["p05"]):.1f}" y="{y + 6}" width="{max(x(s["p95"]) - x(s["p05"]), 1):.1f}" '
                     f'height="{row_h - 12}" fill="{colour}" fill-opacity="0.45" stroke="{colour}"/>'
                     f'<line x1="{x(s["p50"]):.1f}" y1="{y + 4}" x2="{x(s["p50"]):.1f}" y2="{y + row_h - 4}" '
                     f'stroke="#222" stroke-width="2"/>')
    axis_y = 20 + row_h * len(rows) + 4
    parts.append(f'<line x1="{left}" y1="{axis_y}" x2="{width - right}" y2="{axis_y}" stroke="#888"/>')
    for v in np.linspace(low, high, 5):
        parts.append(f'<text x="{x(v):.1f}" y="{axis_y + 14}" font-size="10" text-anchor="middle">'
                     f'{_e(_number(v))}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _bar_chart(report: FeatureReport) -> str:
    """Shares of the top categories, training beside served."""
    train = report.training.get("top_values") or {}
    served = report.served.get("top_values") or {}
    labels = list(dict.fromkeys([*train, *served]))[:12]
    width, left, bar_h = 560, 140, 9
    height = 24 + len(labels) * (2 * bar_h + 6) + 6
    parts = [f'<svg class="chart" role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             f'xmlns="http://www.w3.org/2000/svg"><title>{_e(report.feature)}: category shares</title>',
             f'<rect x="{left}" y="4" width="10" height="10" fill="{_TRAIN_COLOUR}"/>'
             f'<text x="{left + 14}" y="13" font-size="11">training</text>'
             f'<rect x="{left + 90}" y="4" width="10" height="10" fill="{_SERVED_COLOUR}"/>'
             f'<text x="{left + 104}" y="13" font-size="11">served</text>']
    if not labels:
        parts.append(f'<text x="{left}" y="40" font-size="12">no values to draw</text>')
    top = max([*train.values(), *served.values(), 0.0]) or 1.0
    scale = (width - left - 60) / top  # the largest share spans the chart
    for i, label in enumerate(labels):
        y = 24 + i * (2 * bar_h + 6)
        shown = label if len(label) <= 20 else label[:19] + "…"
        parts.append(f'<text x="{left - 6}" y="{y + bar_h + 4}" font-size="11" text-anchor="end">{_e(shown)}</text>')
        for j, (shares, colour) in enumerate(((train, _TRAIN_COLOUR), (served, _SERVED_COLOUR))):
            share = shares.get(label, 0.0)
            parts.append(f'<rect x="{left}" y="{y + j * bar_h}" width="{share * scale:.1f}" height="{bar_h - 1}" '
                         f'fill="{colour}"/><text x="{left + share * scale + 4:.1f}" y="{y + j * bar_h + 8}" '
                         f'font-size="9">{share:.1%}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _skew_text(report: FeatureReport) -> str:
    if report.skew is None:
        return "not measured"
    s = report.skew
    examples = s.get("examples") or []
    shown = f"; e.g. {', '.join(map(str, examples))}" if len(examples) else ""
    return (f"{_rate(s.get('mismatch_rate'))} of {s.get('compared')} compared differ ({s.get('mismatched')}), "
            f"{s.get('missing_online')} missing online, {s.get('lagging')} lagging{shown}")


def _freshness_text(report: FeatureReport) -> str:
    if not report.with_time:
        return "no online event times" + ("" if report.max_age is None else "; max_age does not apply online")
    finite = [a for a in report.ages if a != float("inf")]
    median = _duration(float(np.median(finite))) if finite else "unreadable"
    text = f"{report.with_time} of {report.sampled} sampled entities have an event time; median age {median}"
    if report.max_age is None:
        return text + "; no max_age"
    return text + (f"; {report.stale} ({_rate(report.stale_rate)}) older than max_age {_duration(report.max_age)}, "
                   "served as missing")


def _summary_table(reports: Sequence[FeatureReport]) -> str:
    head = ("<tr><th>feature</th><th>kind</th><th>missing (training)</th><th>missing (served)</th>"
            "<th>online/offline mismatch</th><th>shift</th><th>stale (max_age)</th></tr>")
    rows = []
    for r in sorted(reports, key=lambda r: r.order, reverse=True):
        mismatch = _rate(r.skew.get("mismatch_rate")) if r.skew is not None else "–"
        shift = "–" if r.shift is None else f"{r.shift:.3f}"
        flag = ' class="bad"' if r.severity > 0.1 else ""
        rows.append(f'<tr{flag}><td><a href="#{_e(r.output_name)}">{_e(r.feature)}</a></td><td>{_e(r.kind)}</td>'
                    f'<td>{_rate(r.training.get("missing_rate"))}</td><td>{_rate(r.served.get("missing_rate"))}</td>'
                    f"<td>{mismatch}</td><td>{shift}</td><td>{_rate(r.stale_rate)}</td></tr>")
    return f'<table class="summary">{head}{"".join(rows)}</table>'


def _section(report: FeatureReport) -> str:
    chart = _box_chart(report) if report.kind in ("int", "float") else _bar_chart(report)
    t, s = report.training, report.served
    facts = [("missing", f"training {_rate(t.get('missing_rate'))}, served {_rate(s.get('missing_rate'))} "
                         f"of {report.sampled} sampled entities"),
             ("online/offline skew", _skew_text(report)),
             ("freshness", _freshness_text(report))]
    if report.kind in ("int", "float") and "p50" in t:
        served = f"{_number(s['p50'])}" if "p50" in s else "–"
        facts.insert(1, ("median", f"training {_number(t['p50'])}, served {served}"))
    items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts)
    return (f'<section class="feature" id="{_e(report.output_name)}"><h2>{_e(report.feature)} '
            f'<small>{_e(report.kind)}</small></h2><div class="row">{chart}<dl>{items}</dl></div></section>')


_STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1150px}
table.summary{border-collapse:collapse;font-size:13px}
table.summary th,table.summary td{border:1px solid #ccc;padding:4px 8px;text-align:left}
table.summary tr.bad td{background:#fde8e4}
section.feature{border-top:1px solid #ddd;margin-top:18px;padding-top:6px}
section.feature h2{font-size:16px;margin:6px 0} h2 small{color:#777;font-weight:normal}
.row{display:flex;gap:24px;align-items:flex-start} dl{font-size:13px;margin:0}
dt{font-weight:bold;margin-top:6px} dd{margin:0}
"""


def content_security_policy(style: str) -> str:
    """The page's policy: nothing may load but ``data:`` images, and the one inline style sheet ``style``
    applies by its SHA-256 hash (not ``'unsafe-inline'``: style injected into the page would not apply).

    Examples
    --------
    >>> content_security_policy("b{}")
    "default-src 'none'; style-src 'sha256-7yqHVAesot11p6HczDsgKRipvI5UPgs97z80zNXlans='; img-src data:"
    """
    digest = base64.b64encode(hashlib.sha256(style.encode("utf-8")).digest()).decode("ascii")
    return f"default-src 'none'; style-src 'sha256-{digest}'; img-src data:"


_CSP = content_security_policy(_STYLE)


def render(model_uri: str, env: str, reports: Sequence[FeatureReport], *, now: pd.Timestamp) -> str:
    """The report page of ``reports`` (from :func:`collect`)."""
    title = f"fs_augment report: {model_uri}"
    made = now.strftime("%Y-%m-%d %H:%M:%S %Z")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
            f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>"
            f"<h1>{_e(title)}</h1><p>environment {_e(env)}, {_e(made)}: training statistics logged with "
            f"the model against the features served online for a sample of the offline store's entities. "
            f"Worst first.</p>{_summary_table(reports)}{''.join(_section(r) for r in reports)}</body></html>")


def build_report(model_uri: str, *, env: str | None = None, config_dir: str | os.PathLike[str] | None = None,
                 sample: int = 1000, seed: int = 0, now: pd.Timestamp | None = None) -> str:
    """The HTML report of a logged model against the online store of an environment.

    Parameters
    ----------
    model_uri : str
        A model logged by :func:`fs_augment.mlflow.log_model` (``runs:/...``, ``models:/...``, a folder).
    env, config_dir : optional
        The environment to look up (default: where the model would be served,
        ``$FS_AUGMENT_ENV``, else ``local``).
    sample : int
        Entities per entity column sampled from the offline store.
    seed : int
        Seed of the sample.
    now : Timestamp, optional
        The time event-time ages are measured from.

    Returns
    -------
    str
        One self-contained HTML page.

    Examples
    --------
    >>> html_text = build_report("models:/churn/1", env="staging")  # doctest: +SKIP
    """
    from fs_augment.mlflow import find_augmenters, load_model

    now = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    pipeline = load_model(model_uri).unwrap_python_model().pipeline
    reports: list[FeatureReport] = []
    envs = []
    for augmenter in find_augmenters(pipeline):
        reports += collect(augmenter, env=env, config_dir=config_dir, sample=sample, seed=seed, now=now)
        envs.append(env or augmenter.env or os.environ.get("FS_AUGMENT_ENV", "local"))
    return render(model_uri, ", ".join(dict.fromkeys(envs)), reports, now=now)


def write_report(model_uri: str, path: str | os.PathLike[str], **kwargs: Any) -> Path:
    """Write :func:`build_report`'s page to ``path``; returns the path."""
    out = Path(path)
    out.write_text(build_report(model_uri, **kwargs), encoding="utf-8")
    return out
