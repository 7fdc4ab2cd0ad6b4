"""Matte Metrics: alpha + ground truth (+ trimap) -> the authors' quality numbers and an error map."""

from __future__ import annotations

import torch

from comfy_api.latest import io

from .types import CATEGORY


def metrics_table(rows, trimap_given: bool) -> str:
    from ..matting.metrics import format_table

    where = "unknown region of the trimap (grey 128)" if trimap_given else "whole image"
    head = f"Matting metrics over the {where}; MSE and MAD x1000, SAD, Grad and Conn /1000"
    if rows and "dtSSD" in rows[0]:
        head += ("; dtSSD x100 over the whole frame, from the frame before (Robust Video Matting's "
                 "temporal coherence; the mean is the clip's)")
    names = [str(i + 1) for i in range(len(rows))]
    return head + "\n" + format_table(names, rows)


class PromptMatteMetrics(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="PromptMatteMetrics",
            display_name="Matte Metrics",
            category=CATEGORY,
            description="Measures alpha mattes against ground truths as the SDMatte authors do (MSE, MAD, "
                        "SAD, Grad, Conn on 8-bit grey levels; the alpha resized to the ground truth if its "
                        "size differs) and shows where they differ.",
            inputs=[
                io.Mask.Input("alpha", tooltip="The mattes to measure, 1 = foreground (the alpha of Matting). "
                                               "A batch: one per ground truth, or one for all."),
                io.Mask.Input("ground_truth", tooltip="The true mattes, 1 = foreground. A matte loaded with Load "
                                                      "Image's MASK output is 1 - alpha: use Convert Image to "
                                                      "Mask on its IMAGE instead."),
                io.Mask.Input("trimap", optional=True,
                              tooltip="Optional trimap (0 / 0.5 / 1, the ground truth's size; one for all or one "
                                      "per image): only its unknown (0.5, grey 128) pixels are measured, as the "
                                      "authors' trimap mode. Not connected: the whole image."),
            ],
            outputs=[
                io.String.Output(display_name="table",
                                 tooltip="One line per image and their mean: MSE and MAD x1000, SAD, Grad and "
                                         "Conn /1000 (the authors' units). Batches of the same length are a "
                                         "clip's frames: a dtSSD column (x100, temporal coherence as Robust "
                                         "Video Matting measures it) is added. Connect Preview Any to read it."),
                io.Image.Output(display_name="error_map",
                                tooltip="|alpha - ground truth| per pixel as a heat map (black = equal, "
                                        "purple-red-yellow = larger, square-root scale), the ground truth's "
                                        "size; dimmed outside the trimap's unknown region."),
            ],
        )

    @classmethod
    def execute(cls, alpha, ground_truth, trimap=None) -> io.NodeOutput:
        from ..matting.metrics import measure_masks  # scipy: imported when the node first runs

        rows, maps = measure_masks(alpha, ground_truth, trimap)
        return io.NodeOutput(metrics_table(rows, trimap is not None), torch.from_numpy(maps))
