"""Core ML specs built with coremltools' generated protobuf classes, for the importer's tests."""

from __future__ import annotations

from typing import Any


def mil_program(mil: Any, model_pb: Any, dims: tuple[int, ...] = (1, 4, 2, 2)) -> tuple[Any, Any]:
    """An empty ML program with one fp16 input ``x`` of ``dims``: (the Model message, its main block)."""
    model = model_pb.Model(specificationVersion=8)
    model.mlProgram.version = 1
    main = model.mlProgram.functions["main"]
    main.opset = "CoreML7"
    x = main.inputs.add(name="x")
    x.type.tensorType.dataType = mil.FLOAT16
    x.type.tensorType.rank = len(dims)
    for size in dims:
        x.type.tensorType.dimensions.add().constant.size = size
    return model, main.block_specializations["CoreML7"]
