"""The account filter's tokens (``config.account_filter`` has the language), and its error."""

from __future__ import annotations

from dataclasses import dataclass

from config.errors import InvalidInput


class FilterSyntaxError(InvalidInput):
    """The filter text does not parse; ``position`` (0-based) and ``expected`` say where and why."""

    def __init__(self, message: str, *, position: int, expected: str = "") -> None:
        super().__init__(message, field="account_filter")
        self.position = position
        self.expected = expected
        self.detail = message


_OPS = ("==", "!=", "<=", ">=", "<", ">")
_PUNCT = "()=!<>,'\""


@dataclass(frozen=True, slots=True)
class Token:
    """One token of a filter expression: its kind, its text and where it starts."""

    kind: str  # "(", ")", ",", "op", "word", "string", "eof"
    text: str
    pos: int


def describe(tok: Token) -> str:
    """A token as an error message names it."""
    if tok.kind == "eof":
        return "end of filter"
    if tok.kind == "string":
        return "a quoted string"
    return f"'{tok.text}'"


def tokenize(text: str) -> list[Token]:
    """The tokens of a filter expression; ``FilterSyntaxError`` names the first bad character."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
            continue
        if c in "(),":
            tokens.append(Token(c, c, i))
            i += 1
            continue
        if c == "=":
            j = i + 1
            while j < n and text[j].isspace():
                j += 1
            if j < n and text[j] == "=":
                tokens.append(Token("op", "==", i))
                i = j + 1
                continue
            raise FilterSyntaxError(f"expected '==' at position {i}", position=i, expected="'=='")
        if c in "!<>":
            if i + 1 < n and text[i + 1] == "=":
                tokens.append(Token("op", c + "=", i))
                i += 2
            elif c == "!":
                raise FilterSyntaxError(
                    f"expected '!=' at position {i}", position=i, expected="'!='"
                )
            else:
                tokens.append(Token("op", c, i))
                i += 1
            continue
        if c in "'\"":
            j, chars = i + 1, []
            while j < n and text[j] != c:
                if text[j] == "\\" and j + 1 < n and text[j + 1] in (c, "\\"):
                    j += 1
                chars.append(text[j])
                j += 1
            if j >= n:
                raise FilterSyntaxError(
                    f"expected a closing {c} for the string opened at position {i}",
                    position=i,
                    expected=f"closing {c}",
                )
            tokens.append(Token("string", "".join(chars), i))
            i = j + 1
            continue
        j = i
        while j < n and not text[j].isspace() and text[j] not in _PUNCT:
            j += 1
        tokens.append(Token("word", text[i:j], i))
        i = j
    tokens.append(Token("eof", "", n))
    return tokens
