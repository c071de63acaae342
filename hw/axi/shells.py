"""What the board shells share: the accelerator's ports, black-box instances, the shell's Verilog.

A board shell is an Amaranth component around the accelerator ``lowbit_top``:

* :class:`~lowbit.hw.axi.shells_uart.UARTShell` (``lowbit_uart_top``): the open-flow boards' UART;
* :class:`~lowbit.hw.axi.shells_axis.AXISAdapter` (``lowbit_axis``): AXI4-Stream for the Zynq
  boards' AXI DMA, with the control block and the weight fetchers;
* :class:`~lowbit.hw.axi.shells_sim.SimulatedShell` (``lowbit_sim_shell``): ``lowbit_axis`` and a
  DDR model per weight fetcher, for the simulated PYNQ overlay.

A shell instantiates ``lowbit_top``, ``lowbit_ctrl`` and ``lowbit_wfetch<k>`` as black boxes
(:func:`black_box`): those modules are generated on their own (``lowbit_top.v`` by ``lowbit
compile``, the others from :class:`~lowbit.hw.axi.control.ControlBlock` and
:class:`~lowbit.hw.axi.wfetch.WeightFetcher`) and sit next to the shell in every build. The
instances' port names, directions and widths come from signatures, the way Amaranth names a
component's ports (``i__payload``, ``axil__awaddr``): the components' own signatures, and for
``lowbit_top`` :func:`accelerator_signature`, whose widths come from the accelerator's
:class:`~lowbit.hw.codec.StreamFormat` (:func:`payload_bits`). No Verilog is parsed.

:func:`shell_verilog` writes a shell's Verilog file: a comment header, the top module the board
flow sees as a plain ANSI port list (with the component's port attributes, e.g. Vivado's
``X_INTERFACE_INFO``), rendered from the component's signature and holding nothing but the
instance of the core, and the core itself, :func:`~lowbit.hw.verilog.to_verilog` of the component.
The rendered top keeps the file's interface a readable ANSI declaration, one port a line with
direction and width (yosys ``write_verilog``, Amaranth's backend, lists the ports by name and
declares them in the body, in its own order), and carries the port attributes on the module the
board flow takes as its top (Vivado reads them on the module its block design references).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from amaranth.hdl import Instance, Shape, Value
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..codec import StreamFormat, label_bits
from ..verilog import TOPLEVEL, to_verilog

__all__ = [
    "payload_bits",
    "accelerator_signature",
    "port_names",
    "flat_members",
    "black_box",
    "shell_verilog",
]


def _positive(name: str, value) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")
    return value


def payload_bits(fmt: StreamFormat) -> tuple[int, int]:
    """Widths of ``lowbit_top``'s ``i`` and ``o`` payloads for the stream format ``fmt``.

    ``i`` carries ``simd`` elements of ``in_bits`` bits; ``o`` the label (``label_bits(classes)``
    bits, at the LSB) and then ``classes`` scores of ``score_bits`` bits
    (:class:`~lowbit.hw.stream.label.LabelSelect`'s result layout, as
    :func:`~lowbit.hw.codec.decode_result` reads it).
    """
    if not isinstance(fmt, StreamFormat):
        raise TypeError(f"fmt must be a StreamFormat, not {fmt!r}")
    return fmt.simd * fmt.in_bits, label_bits(fmt.classes) + fmt.classes * fmt.score_bits


def accelerator_signature(
    in_bits: int, out_bits: int, weight_words: Mapping[int, int] | None = None
) -> wiring.Signature:
    """The ports of ``lowbit_top`` (:class:`~lowbit.hw.top.Accelerator`) as plain bit vectors.

    Parameters
    ----------
    in_bits, out_bits : int
        Widths of the ``i`` and ``o`` stream payloads (:func:`payload_bits`).
    weight_words : mapping of int to int, optional
        ``{unit: word_bits}`` of the units whose weights stream from DDR: port ``ws<unit>``.

    The accelerator's ``clk`` and ``rst`` (its ``sync`` domain) are not part of a signature; see
    :func:`black_box`.
    """
    members = {
        "i": In(stream.Signature(_positive("in_bits", in_bits))),
        "o": Out(stream.Signature(_positive("out_bits", out_bits))),
    }
    for unit, bits in sorted(dict(weight_words or {}).items()):
        if not isinstance(unit, int) or isinstance(unit, bool) or unit < 0:
            raise ValueError(
                f"weight_words keys must be unit indices (integers >= 0), not {unit!r}"
            )
        members[f"ws{unit}"] = In(stream.Signature(_positive(f"weight_words[{unit}]", bits)))
    return wiring.Signature(members)


def port_names(signature: wiring.Signature) -> dict[str, wiring.Member]:
    """``{name: member}`` of every port of ``signature`` with the name Amaranth gives it in Verilog
    (the path joined with ``__``) and its flow as seen from inside the component."""
    if not isinstance(signature, wiring.Signature):
        raise TypeError(f"signature must be a wiring.Signature, not {signature!r}")
    return {
        "__".join(map(str, path)): member
        for path, member in signature.members.flatten()
        if member.is_port
    }


def flat_members(prefix: str, member: wiring.Member) -> dict[str, wiring.Member]:
    """The ports ``member`` (``In(signature)`` or ``Out(signature)``) would give under the name
    ``prefix``, flattened to single-underscore names as bus interfaces are spelled in Verilog
    (``s_axi_awaddr`` rather than Amaranth's ``s_axi__awaddr``)."""
    if not isinstance(member, wiring.Member) or not member.is_signature:
        raise TypeError(f"member must be In(signature) or Out(signature), not {member!r}")
    flat = port_names(wiring.Signature({prefix: member}))
    return {
        name.replace("__", "_"): (In if m.flow == wiring.In else Out)(m.shape)
        for name, m in flat.items()
    }


def black_box(
    module: str,
    signature: wiring.Signature,
    ports: Mapping[str, Value],
    *,
    clk: Value | None = None,
    rst: Value | None = None,
    params: Mapping[str, object] | None = None,
) -> Instance:
    """An :class:`~amaranth.hdl.Instance` of the Verilog module ``module`` whose ports are those
    of ``signature`` (:func:`port_names`: inputs are its ``In`` members), connected to ``ports``,
    plus ``clk`` and ``rst`` when given (a component's ``sync`` domain) and Verilog ``params``.

    Raises
    ------
    ValueError
        ``ports`` misses a port of ``signature`` or names one it does not have.
    """
    members = port_names(signature)
    missing, unknown = set(members) - set(ports), set(ports) - set(members)
    if missing or unknown:
        raise ValueError(
            f"ports of {module} must match its signature: missing {sorted(missing)}, "
            f"unknown {sorted(unknown)}"
        )
    kwargs = {f"p_{k}": v for k, v in (params or {}).items()}
    for name, value in (("clk", clk), ("rst", rst)):
        if value is not None:
            kwargs[f"i_{name}"] = value
    for name, member in members.items():
        kwargs[f"{'i' if member.flow == wiring.In else 'o'}_{name}"] = ports[name]
    return Instance(module, **kwargs)


def shell_verilog(component: wiring.Component, name: str, *, header: Sequence[str] = ()) -> str:
    """The Verilog file of the shell ``component``: ``header`` as ``//`` comment lines, module
    ``name`` (an ANSI port list rendered from the component's signature, each port with the
    attributes ``component.port_attrs.get(port, {})``, and an instance ``core`` of the core) and
    module ``<name>_core``, :func:`~lowbit.hw.verilog.to_verilog` of ``component``."""
    if not isinstance(component, wiring.Component):
        raise TypeError(f"component must be a wiring.Component, not {component!r}")
    if not isinstance(name, str) or not name.isidentifier() or name == TOPLEVEL:
        raise ValueError(f"name must be a Verilog identifier other than {TOPLEVEL!r}, not {name!r}")
    attrs = getattr(component, "port_attrs", {})
    core = f"{name}_core"
    decls, conns = [], []
    for port, member in port_names(component.signature).items():
        width = Shape.cast(member.shape).width
        for key, value in attrs.get(port, {}).items():
            decls.append(f'  (* {key} = "{value}" *)')
        direction = "input" if member.flow == wiring.In else "output"
        decls.append(f"  {direction} wire {f'[{width - 1}:0] ' if width > 1 else ''}{port},")
        conns.append(f"    .{port}({port})")
    decls[-1] = decls[-1].rstrip(",")
    lines = [f"// {line}".rstrip() for line in header]
    cls = type(component).__qualname__
    lines += [
        f"// {name}: ports from the signature of {cls}; its logic is {core}, below "
        "(Amaranth output).",
        f"module {name} (",
        *decls,
        ");",
        f"  {core} core (",
        ",\n".join(conns),
        "  );",
        "endmodule",
        "",
        "",
    ]
    return "\n".join(lines) + to_verilog(component, name=core)
