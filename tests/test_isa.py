"""edge_mlp.bench.isa: finding AMX int8 kernels in the runtimes' binaries, and the bench note."""

from __future__ import annotations

from edge_mlp.bench.isa import amx_note, has_amx_int8_code, report_note, runtime_has_amx_int8

_CODE = b"\x55\x48\x89\xe5" * 64  # filler: push rbp; mov rbp, rsp
_LDTILECFG = b"\xc4\xe2\x78\x49\x00"  # ldtilecfg [rax]
_TDPBSSD = b"\xc4\xe2\x73\x5e\xc1"  # tdpbssd tmm0, tmm1, tmm1 (encoding as objdump decodes it)


def test_amx_int8_code_needs_a_tile_configuration_and_an_int8_tile_dot_product() -> None:
    assert has_amx_int8_code(_CODE + _LDTILECFG + _CODE + _TDPBSSD + _CODE)
    assert not has_amx_int8_code(_CODE + _TDPBSSD + _CODE)  # no tile configuration
    assert not has_amx_int8_code(_CODE + _LDTILECFG + _CODE)  # no dot product
    wide = _TDPBSSD[:2] + bytes([_TDPBSSD[2] | 0x80]) + _TDPBSSD[3:]  # W = 1: another instruction
    assert not has_amx_int8_code(_LDTILECFG + wide)
    memory = _TDPBSSD[:4] + b"\x01"  # a memory operand (mod 00): not a tile register pair
    assert not has_amx_int8_code(_LDTILECFG + memory)


def test_pinned_runtimes_amx_kernels_as_their_binaries_and_tile_permissions_show() -> None:
    # Checked independently on an AMX-INT8 Xeon: objdump finds 234 AMX instructions in LiteRT's
    # XNNPACK and none in ExecuTorch's, and loading a LiteRT model asks Linux for the tile state
    # (arch_prctl ARCH_GET_XCOMP_PERM shows XTILEDATA) while loading a .pte does not.
    assert runtime_has_amx_int8("ai-edge-litert") is True
    assert runtime_has_amx_int8("executorch") is False
    assert runtime_has_amx_int8("no-such-distribution") is None


def test_amx_note_only_where_the_cpu_has_amx_and_the_int8_runtimes_differ() -> None:
    mixed = {"litert-xnnpack": True, "executorch-xnnpack": False, "onnxruntime-cpu": None}
    note = amx_note(mixed, flags={"avx512f", "amx_int8"})
    assert note is not None and note.startswith("note: this CPU has AMX-INT8")
    assert "litert-xnnpack carry AMX int8 kernels, executorch-xnnpack none" in note
    assert "onnxruntime-cpu" not in note  # not installed: nothing known
    assert amx_note(mixed, flags={"avx512f", "avx512_vnni"}) is None
    assert amx_note({"litert-xnnpack": True, "onnxruntime-cpu": True}, flags={"amx_int8"}) is None


def test_report_note_reads_the_int8_host_backends_of_a_report() -> None:
    def row(backend: str, precision: str, source: str = "host") -> dict:
        return {"backend": backend, "precision": precision, "source": source}

    report = {"results": [row("executorch-xnnpack", "int8"), row("litert-xnnpack", "int8"),
                          row("pytorch-eager", "fp32")]}
    note = report_note(report, flags={"amx_int8"})
    assert note is not None and "litert-xnnpack carry" in note and "executorch-xnnpack none" in note
    fp32_only = {"results": [row("executorch-xnnpack", "fp32"), row("litert-xnnpack", "fp32")]}
    assert report_note(fp32_only, flags={"amx_int8"}) is None
    assert report_note(report, flags={"avx512_vnni"}) is None
