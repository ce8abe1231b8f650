#!/usr/bin/env python3
"""Makes assets/fonts/duet-icons.ttf: the few symbols egui's fonts lack.

egui_commonmark draws its code-block copy button as U+1F5D0 (two pages) and
U+2714 (heavy check mark) once copied. Neither is in egui's bundled fonts, and
many systems have no font with U+1F5D0, so the button drew a box. These are
our own outlines (plain rectangles and one polygon), so the font carries no
third-party licence. Needs `pip install fonttools`; the .ttf is committed, so
building duet never runs this.
"""
from pathlib import Path

from fontTools.fontBuilder import FontBuilder
from fontTools.pens.ttGlyphPen import TTGlyphPen

EM = 1000


def rect(pen, x0, y0, x1, y1, clockwise=True):
    pts = [(x0, y0), (x0, y1), (x1, y1), (x1, y0)]
    if not clockwise:
        pts.reverse()
    polygon(pen, pts)


def polygon(pen, pts):
    pen.moveTo(pts[0])
    for p in pts[1:]:
        pen.lineTo(p)
    pen.closePath()


def copy_icon():
    pen = TTGlyphPen(None)
    # The front page: an outline (outer clockwise, hole counter-clockwise).
    rect(pen, 100, 0, 600, 600)
    rect(pen, 170, 70, 530, 530, clockwise=False)
    # The page behind it, offset up and right: only its visible edges.
    rect(pen, 250, 680, 750, 750)
    rect(pen, 680, 150, 750, 750)
    rect(pen, 250, 600, 320, 750)
    rect(pen, 600, 150, 750, 220)
    return pen.glyph()


def check_mark():
    pen = TTGlyphPen(None)
    polygon(pen, [(80, 330), (330, 80), (820, 570), (720, 670), (330, 280), (180, 430)])
    return pen.glyph()


def main():
    glyphs = {".notdef": TTGlyphPen(None).glyph(), "copy": copy_icon(), "check": check_mark()}
    fb = FontBuilder(EM, isTTF=True)
    fb.setupGlyphOrder(list(glyphs))
    fb.setupCharacterMap({0x1F5D0: "copy", 0x2714: "check"})
    fb.setupGlyf(glyphs)
    fb.setupHorizontalMetrics({".notdef": (500, 0), "copy": (850, 100), "check": (900, 80)})
    fb.setupHorizontalHeader(ascent=800, descent=-200)
    fb.setupNameTable({"familyName": "duet icons", "styleName": "Regular"})
    fb.setupOS2(sTypoAscender=800, sTypoDescender=-200, usWinAscent=800, usWinDescent=200)
    fb.setupPost()
    out = Path(__file__).resolve().parent.parent / "assets" / "fonts" / "duet-icons.ttf"
    fb.save(str(out))
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
