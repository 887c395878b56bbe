"""`raiox vision ...`: train, evaluate and export embedding models."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Implant localisation and embedding models.", no_args_is_help=True)


@app.command("export-onnx")
def export_onnx(
    model: str = typer.Argument(..., help="open_clip MODEL/TAG, e.g. ViT-B-32/laion2b_s34b_b79k (TAG 'none': untrained)"),
    out: Path = typer.Option(..., "--out", help="ONNX file to write"),
) -> None:
    """Turn an open_clip image tower into an ONNX file usable as RAIOX_EMBEDDER=onnx:PATH."""
    from raiox.vision.export import export_open_clip

    path = export_open_clip(model, out)
    typer.echo(f"wrote {path}")
