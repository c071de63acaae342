"""Boards as data: one frozen :class:`Board` record per board, looked up by name."""

from .records import (
    BOARDS,
    FAMILIES,
    LUT4_PER_LUT6,
    OPEN_FLOW_FAMILIES,
    PS_TYPES,
    Board,
    Pins,
    board_names,
    get_board,
    register_board,
)

__all__ = [
    "Board",
    "Pins",
    "BOARDS",
    "FAMILIES",
    "OPEN_FLOW_FAMILIES",
    "PS_TYPES",
    "LUT4_PER_LUT6",
    "get_board",
    "board_names",
    "register_board",
]
