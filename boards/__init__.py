"""Boards as data: one frozen :class:`Board` record per board, looked up by name."""

from .records import BOARDS, Board, board_names, get_board

__all__ = ["Board", "BOARDS", "get_board", "board_names"]
