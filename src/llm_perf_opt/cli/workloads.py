"""``llm-perf-opt workloads``: the preset workload profiles and the resolution modes, with their token counts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click

from llm_perf_opt.workloads.crops import candidate_grids
from llm_perf_opt.workloads.modes import MODES, ResolutionMode
from llm_perf_opt.workloads.presets import PRESETS
from llm_perf_opt.workloads.tokens import image_tokens, view_grid_side
from llm_perf_opt.workloads.workload import Workload

__all__ = ["workloads"]


def _preset_rows() -> list[dict[str, Any]]:
    rows = []
    for profile_id in PRESETS:
        profile = PRESETS[profile_id]
        workload = Workload.from_profile(profile)
        rows.append(
            {
                "profile_id": profile_id,
                "description": profile.description,
                "mode": workload.mode.name,
                "page_width": workload.page_width,
                "page_height": workload.page_height,
                "grid": list(workload.grid),
                "num_crops": workload.num_crops,
                "image_tokens": workload.image_tokens,
                "prompt_tokens": workload.prompt_tokens,
                "seq_len": workload.seq_len,
                "max_new_tokens": workload.max_new_tokens,
                "decode_steps": workload.decode_steps,
                "final_kv_len": workload.final_kv_len,
                "batch_size": workload.batch_size,
                "num_pages": workload.num_pages,
                "doc_kind": profile.doc_kind,
            }
        )
    return rows


def _token_formula(mode: ResolutionMode) -> str:
    """``N_img`` as a function of the crop grid (i cols, j rows), from the mode's sizes."""
    n_g = view_grid_side(R=mode.global_view_size)
    fixed = n_g * (n_g + 1) + 1
    if not mode.crop_mode:
        return str(fixed)
    n_q = view_grid_side(R=mode.image_size)
    return f"{fixed} + {n_q * n_q}*i*j + {n_q}*j ({fixed} without crops)"


def _mode_rows(prompt_tokens: int = 9) -> list[dict[str, Any]]:
    rows = []
    for mode in MODES.values():
        grids = [(1, 1), *candidate_grids()] if mode.crop_mode else [(1, 1)]
        counts = [image_tokens(mode=mode, grid=grid) for grid in grids]
        rows.append(
            {
                "mode": mode.name,
                "base_size": mode.base_size,
                "image_size": mode.image_size,
                "crop_mode": mode.crop_mode,
                "global_view_size": mode.global_view_size,
                "crop_size": mode.crop_size,
                "image_tokens_formula": _token_formula(mode),
                "min_image_tokens": min(counts),
                "max_image_tokens": max(counts),
                "min_seq_len": 1 + min(counts) + prompt_tokens,
                "max_seq_len": 1 + max(counts) + prompt_tokens,
            }
        )
    return rows


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Plain left-aligned columns, two spaces apart."""
    widths = [max(len(headers[c]), *(len(row[c]) for row in rows)) for c in range(len(headers))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return lines


def _span(low: int, high: int) -> str:
    return str(low) if low == high else f"{low}..{high}"


def _render_text(presets: list[dict[str, Any]], modes: list[dict[str, Any]]) -> str:
    lines = ["Workload presets (S = 1 BOS + image tokens + prompt tokens; N new tokens = 1 from prefill + N-1 decode)"]
    lines += _table(
        ("id", "mode", "page (px)", "grid", "crops", "image tok", "prompt", "S", "new tok", "pages", "kind"),
        [
            (
                row["profile_id"],
                row["mode"],
                f"{row['page_width']}x{row['page_height']}",
                f"{row['grid'][0]}x{row['grid'][1]}",
                str(row["num_crops"]),
                str(row["image_tokens"]),
                str(row["prompt_tokens"]),
                str(row["seq_len"]),
                str(row["max_new_tokens"]),
                str(row["num_pages"]),
                row["doc_kind"],
            )
            for row in presets
        ],
    )
    lines.append("")
    lines += [f"{row['profile_id']}: {row['description']}" for row in presets]
    lines += ["", "Resolution modes (i x j crop grid: 2..9 crops, none when both page sides <= the crop size)"]
    lines += _table(
        ("mode", "global view", "crops", "image tokens N_img", "S (9-token prompt)"),
        [
            (
                row["mode"],
                f"{row['global_view_size']} px",
                f"{row['crop_size']} px" if row["crop_mode"] else "none",
                row["image_tokens_formula"],
                _span(row["min_seq_len"], row["max_seq_len"]),
            )
            for row in modes
        ],
    )
    return "\n".join(lines)


@click.command("workloads")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text: aligned tables; json: one deterministic object {presets: [...], modes: [...]}.",
)
def workloads(output_format: str) -> None:
    """List the workload presets and resolution modes with page, crop grid, image tokens, S and new tokens."""
    presets, modes = _preset_rows(), _mode_rows()
    if output_format == "json":
        click.echo(json.dumps({"presets": presets, "modes": modes}, indent=2, sort_keys=True))
    else:
        click.echo(_render_text(presets, modes))
