"""Generative patch nearest neighbours (GPNN, Granot et al., CVPR 2022), our implementation.

The source is turned into a pyramid (ratio 0.75). The coarsest level starts from a
re-composed copy of the source: mirrored at random, warped by a smooth random field, plus
noise (below diversity 1, a middle level starts from the source gently warped instead, or
in a picture with a sky moved a little along seams; see Settings). Then, level by level
towards the finest, every 7x7 patch of the current estimate is replaced by its nearest
source patch and overlapping patches are averaged, weighted by how well each one matched,
a few times per level. The coarse levels decide the arrangement, the fine levels restore
sharp detail, so every output patch comes from the source (coherence) while the layout
is new (diversity).

From diversity 1 up, a picture with a layout (neither a texture nor a sparse field)
starts at a middle level (61 px) from the source with its parts moved apart or together
along seams of least contrast (see _seams), the best of a few such drafts (see
seams_start). Rounds of wider patches there put back the outlines the seams bent (see
SHAPE_PATCH), near where a seam tore one from rigid pieces of the place it was torn from
where those pieces agree (see TORN_PATCH and AGREE), and the next levels take more rounds
to redraw what the seams stretched from the source's own patches. From 2 up the seams move
the picture again, from the last move settled (see chained_start), and some of the samples
come out mirrored (see FLIP_EVERY).
Re-composed from the coarsest level instead, its samples were collages: a subject drawn
twice, objects cut in half.

A sparse field inside a round frame (a fundus photo: vessels, an optic disc and a macula on
an orange field) starts at the same middle level from the source turned a little about the
field's centre and gently warped, and from 2 up some of its samples come out mirrored too
(see TURN). Re-composed from the coarsest level, it lost its optic disc in most samples.

Why a warped start rather than GPNN's pure noise (textures and sparse pictures): noise strong
enough to move objects also breaks them (half objects, smeared blobs); a smooth warp moves
and re-scales whole regions, which the patch search then rebuilds in a new arrangement.

At the coarsest level, plain nearest neighbours often draw the subject twice (each patch
there covers half the picture); wherever that level re-composes a layout (from diversity 1
up), the patches there choose in turn so that each part of the source is shown at one
place (see _exclusive).

In a texture of small things on a plain background (a starfield), overlapping patches
that disagree average into faint dots, which the next search takes for background: the
samples came out with large empty regions. There each pixel is taken mostly from the
patches centred near it (see SPARSE_VOTE).

In a dense texture (grass, gravel, pebbles), regions copied from different places met in
smooth smears (in white noise, grey bands), which the next searches kept. There each
search also offers every patch its neighbours' shifts (see _propagate), so copied
regions grow across the smear and meet at a narrow seam.

A picture with a frame (a margin of one colour joined to the border, such as a fundus
photo's black corners) keeps it where it is from a middle level on; only the inside is
re-composed (see _frame).

Above diversity 1, stronger noise scatters small rare things, such as a starfield's
galaxies. In a sparse texture, or a sparse field inside a frame that is not round, the
coarse searches favour the source patches the estimate does not show yet (see
COMPLETE_UP_TO).

Plain GPNN sometimes rebuilds the source almost unchanged. We measure that at a middle
level (how much of the output is one rigid shift of the source) and re-draw with a
stronger start, which costs only the cheap coarse levels.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from itertools import islice
from typing import NamedTuple

import numpy as np

from ._exclusive import exclusive_nearest, is_texture
from ._frame import FROM_SIZE, LevelFrame, frame_of, is_round
from ._patches import (
    align_border,
    changed_rows,
    extract,
    patches_at,
    resize,
    upsample_nnf,
    vote,
    vote_spread,
    window_mean,
)
from ._propagate import propagate
from ._seams import APART, draw_moves, has_plain_region, pixels_of, recompose, torn_outlines
from ._search import PatchIndex, completing_nearest, nearest_among

PATCH = 7
RATIO = 0.75
NOISE = 0.25
"""Std of the Gaussian noise added to the coarsest level (pixels in [0, 1]) at diversity 1;
it grows as diversity**1.5, in a sparse texture in proportion (see Settings.for_diversity)."""
WARP = 0.12
"""Std of the smooth warp's displacement, as a share of the image side, at diversity 1; it
grows in proportion to diversity, in a sparse texture with its square root."""
MIRROR = 0.5
"""Chance that the start is mirrored left to right, from diversity 1 up."""
WARP_GRID = 4
"""The warp is drawn on a WARP_GRID x WARP_GRID grid of displacements, smoothly upsampled."""
GENTLE_WARP_GRID = 3
"""The grid of a gentle variation's warp (diversity below 1): smoother, so that it moves
parts without squeezing them. On WARP_GRID's, the astronaut's face came out smeared or
twisted in 4 of 16 samples at 0.5 (seeds 0-3), a mouth drawn over a cheek; on 3, in none,
and the samples' measured diversity stayed about the same (means over seeds 0-3, the 7
benchmark photos: 0.072-0.245 on 4, 0.082-0.242 on 3). A start at a finer level instead
(61 or 81 px rather than 46) broke more faces, since fewer levels redraw the warp."""
COARSEST = 16
"""Side the coarsest level is nearest to, from diversity 1 up: 14 px at the 256 px working
size (every output size is generated there), which then has 11 levels."""
GENTLE_COARSEST = 48
"""Side of the level that gentle variations (diversity below 1) start at."""
SEAMS = 0.2
"""Share of the side moved along seams at diversity 1 (see _seams); it grows in proportion to
diversity, in one move below 2 and from 2 up in as many moves as the integer part of
diversity (see chained_start)."""
SEAMS_MOST = 0.4
"""The largest share one move by seams may take (see Settings.stronger)."""
FLIP_EVERY = {2: 4, 3: 2}
"""From diversity 2 up, a picture with a layout or a fundus photo (see TURN) comes out
mirrored left to right in one sample of every 4 of a request (2 to 3), or of every 2 (from
3 up). Chained moves by seams alone varied coffee's samples less at 2 than one move at 1
(diversity 0.303 against 0.366, seed 0): the settled picture is the source's own patches
again, and the next move's seams are drawn as freely as the first's, so the moves do not
add up. A mirrored sample differs from an upright one in nearly every pixel; fixed shares,
not a coin per sample, so that a request's 4 samples always show the step (a coin left all
4 of a request one way in 1 of 8)."""
APART_FROM = 3
"""From this diversity up, the removed seams are kept apart as the inserted ones are (see
_seams.APART), so that the three chained moves no longer widen a cup (its rim 1.28 times
as wide as the input's at 3, now 1.00). At 2 as well, the two moves' samples varied more
than those at 3 (coffee at seed 7: 0.521 and 0.502; now 0.384 and 0.502), and the knob's
step was lost; without, the two moves widen the cup less than three (1.20 times; see
docs/engine, "Removed seams kept apart at 3")."""
SEAMS_COARSEST = 64
"""Side of the level a start by seams is at (61 px at 256). Starting lower, at 34 or 26 px,
scored better on coarse coherence but split faces into two halves: a seam through a face a
few pixels wide deforms it."""
DRAFTS = 8
"""Starts by seams drawn per try, each moving between half and one and a half times the
share asked; one is kept (see seams_start)."""
DRAFT_QUANTILE = 0.95
"""A draft is scored by this quantile of its patches' distances to the nearest source patch:
the stretched spots, not the mean (the median or 0.99 chose as well)."""
UNSEEN = PATCH * PATCH * 3 * (6 / 255) ** 2
"""A draft scored at most this (its worst-matched patches 6 levels of 255 from the source's,
root mean square) stretched nothing worth avoiding: in a picture with wide plain parts
(rocket's sky) most drafts do, and the one whose detail moved furthest is kept. With the
best-matched one kept there too, rocket's samples varied too little (diversity 0.210 over
seeds 0-3); at 4 levels 0.249, at 6 0.286, at 8 0.295 with more of its towers broken. No
draft of coffee, chelsea or the astronaut scores this low."""
SEAMS_ROUNDS = 16
"""Rounds at the level a start by seams is at, and (REPAIR_ROUNDS) at the next ones up to
REPAIR_UP_TO: a stretched part takes more rounds than a re-composition to be redrawn from
the source's own patches."""
REPAIR_ROUNDS = 8
REPAIR_UP_TO = 150
"""81, 108 and 144 px at 256. With 144 px as well as the two below it, the worst-patch figure
over the 7 benchmark photos fell from 0.704x to 0.693x the old engine's (seeds 0-3), for
about 0.1 s a sample; coarse coherence and diversity did not move."""
ALIGN_ABOVE = 128
"""At the levels wider than this (144 px and up at 256), the border's patch choices carried
up are aligned with the coarser picture (see _patches.align_border). The slivers it
prevents are born at 81 px, but stay faint (0.98, then 0.86 of white) until 144 px, where
the coarser picture still shows the border clean. Aligned from 81 px, the near-copy check
at 108 px (SEAMS_CHECK_SIZE) found 2 of coffee's 8 samples (seeds 0-1) near-copies instead
of 1 (0.604 and 0.635 copy share against 0.585 and 0.634), and re-drew them with deeper
seams; aligned at every level, a starfield's samples varied less (diversity 0.322 against
0.361 without, seeds 0-3): at 26 px the border ring holds a fifth of the patches, and
moving them there redraws the whole coarse layout."""
SHAPE_PATCH = 13
"""After a start by seams, SHAPE_ROUNDS of the rounds at its level compare patches this
wide (13 px of 61, a fifth of the side) instead of PATCH. Where a seam crosses an outline
it bends it (a bite out of a saucer's edge), and 7x7 patches of the bend still match some
corner of the source; patches this wide match only the source's own outlines, so these
rounds put rigid pieces of them back, and the PATCH rounds after them settle the detail.
See docs/engine, "Wide patches after a start by seams"."""
SHAPE_ROUNDS = 4
SHAPE_AFTER = 8
"""The wide rounds come after this many PATCH rounds. Run on the draft itself, they drew
twice a small thing the seams had stretched (a badge, a name tag: its wide patches matched
it at two offsets, one each side); after 8 PATCH rounds it is one thing again."""
TORN_PATCH = 19
"""Near where a seam tore an outline of the picture (see _seams.torn_outlines and
TORN_PIXELS), the wide rounds compare patches this wide (a third of 61 px), each only with
the source patches centred within ANCHOR px of where its centre came from: rigid pieces of
the outline it was torn from. Coffee's rims came out round where they were kinked or
spouted (benchmarks/rims.py, seeds 0-3: 2.74 px from an ellipse, none over 4 px, against
3.54 and 3 of 16; 2.62 and 1 of 16 since inserted seams' shears are marked at 1, see
_seams.torn_outlines). Used everywhere, not only near a tear, these patches made the other
photos' coarse coherence 8% worse (the astronaut's 10%); near a tear only, it is the same
on the mean of the five photos with a layout (see docs/engine, "Rigid pieces where a seam
tore an outline")."""
ANCHOR = 1
"""With 3 px of slack, small things were drawn twice where their pieces came from two
places: the astronaut's badge stacked on a second one; with 0 px, rims 3.06 px."""
TORN_PIXELS = 2
"""A pixel with this many torn ones in the TORN_PATCH square around it takes the rigid
pieces only, with fewer a share in proportion (softened over PATCH px). With 4 or 8,
rims 2.59 or 2.86 px against 2.50 (measured with 3 px of slack)."""
AGREE = 0.07
"""Where the rigid pieces that overlap at a pixel disagree, each taken from where its own
centre came from in a part the seams squeezed (the astronaut's flag: stripes and stars),
their average is a blur, which the next rounds redrew as something else: the helmet's
neck ring or a dark blot in the flag's corner, in 12 of 32 samples (seeds 0-7, more dark
pixels in the top-left corner than the input has). A pixel takes the rigid pieces in
proportion to exp(-(spread / AGREE)**2), the spread being the std of the values they give
it (pixels in [0, 1], see _patches.vote_spread) averaged over the SHAPE_PATCH square
around it: a torn outline's pieces disagree along a line a few pixels wide, a squeezed
pattern's over a region. Now 3 of 32 samples show such blots, and coffee's rims stay as
round (benchmarks/rims.py, seeds 0-7: 2.81 px from an ellipse and 2 of 32 over 4 px,
against 2.87 and 4). Not averaged, AGREE 0.15 left 1 of 32 blots but rims 3.23 px after
the rounds at 61 px (seeds 0-11, against 2.97; now 2.90); 0.2 left 4 blots."""
GENTLE_WARP = 0.04
"""Std of a gentle variation's warp at diversity 1 (it scales with diversity below 1)."""
CHECK_SIZE = 48
"""The near-copy check runs after the first level at least this large."""
SEAMS_CHECK_SIZE = 100
"""After a start by seams, the near-copy check runs at the first level at least this large
(108 px at 256): at 61 px it flagged draws that ended at 0.22-0.50 copy share, and their
re-draws, carved deeper, split the astronaut's face in the README demo (seed 7)."""
COPY_LIMIT = 0.6
"""A draw whose largest rigidly shifted region covers more than this share is a near-copy."""
REDRAWS = 4
"""Re-draws allowed after near-copies, each with STEP times stronger warp and noise."""
ALTERNATIVES = 2
"""A start by seams whose draw came out a near-copy is re-drawn first from the next of its
drafts (see seams_start), at the same share, before the seams go deeper (Settings.stronger).
Re-drawn deeper at once, the README demo's third astronaut (seed 7, index 2) came out a
fifth larger, her hair cut by the top border and her badge drawn twice. At diversity 1
(five photos and the demo's coffee, seeds 0-11) 31 of the 33 re-drawn samples changed: the
worst-patch figure 61 -> 58, coarse coherence 115 -> 110 (x1e5); by eye the astronaut
whole and rounder rims in 5 of coffee's 14, one trade (a spout for a widened cup), the
others about the same."""
STEP = 1.6
SPARSE = 0.9
"""A picture is sparse when the tenth of its pixels furthest from its median colour carry
at least this share of the squared distance to it: hubble_deep_field 0.98; brick and
rocket 0.72, grass 0.42, the other benchmark photos 0.25 to 0.49."""
SPARSE_VOTE = 1.0
"""In a sparse texture, the vote weights each patch's pixels by a Gaussian of this std
(pixels) around the patch's centre. hubble_deep_field's samples kept their galaxies in
0.55-1.0 of the 8x8 cells with an even vote, 0.94-1.0 with this (0.88-1.0 with 1.5).
Dense textures (grass, gravel, brick) came out with more seams, and in a picture of
objects an even vote hides seams better, so they keep it."""
SPARSE_FIELD = 0.75
"""A framed picture is a sparse field when the tenth of the pixels inside its frame (see
_frame) furthest from their median colour carry at least this share of the squared
distance to it: retina 0.80 (vessels, the optic disc and the macula on an orange field),
the astronaut inside a white margin 0.25. A picture without a frame is not asked (of the
unframed benchmark photos, rocket would come nearest: 0.72)."""
TURN = 20.0
"""Std, in degrees, of the turn about the middle of the field that a sparse field inside a
round frame (a fundus photo: see SPARSE_FIELD and _frame.ROUND) starts with from
diversity 1 up, at FIELD_COARSEST, after a warp of FIELD_WARP; the frame stays in place,
and from 2 up a share of the samples is mirrored, a right eye for a left (FLIP_EVERY).
Re-composed from the coarsest level as a texture is, retina lost its optic disc in about
20 of 32 samples at 1 (seeds 0-7, by eye) and showed two maculas in about 7; turned, the
disc is in all 32 and one macula in each, and the samples vary as much (diversity, means
over seeds 0-7: 0.245 before, 0.256 now). At 15 degrees they varied less (0.239); at 25
more of them lost vessels (10 of 32 kept under half the input's vessel pixels, against 5
at 20, both without FIELD_ALPHA): a vessel's patches turned further match a plain patch
better than another vessel's. A turn grown with diversity added no variety from 2 up
(the mirrored samples set it there) and lost more vessels. With one sample in 4 mirrored
at 1 already, the samples varied more at 1 (0.408, seeds 0-3) than a stronger start
could add at 2 and 3 (0.44, one in 2 mirrored)."""
FIELD_WARP = 0.06
"""Std of that start's warp, as a share of the side, on GENTLE_WARP_GRID's grid. At 0.08
the optic disc was lost by the bright-pixel count (see FIELD_ALPHA) in 3 of 16 samples
(seeds 0-3, turned by 15 degrees), and stretched or doubled in others."""
FIELD_COARSEST = 64
"""Side of the level that start is at (61 px at 256). From 46 px the samples varied less
(0.230 against 0.239, seeds 0-3); from 81 px more of them lost vessels (5 of 16 kept under
half the input's vessel pixels, against 3)."""
FIELD_ALPHA = 0.5
"""The completeness term (see ALPHA) of the searches at that start's level, so that the
vessels a turn thinned come back. On retina (seeds 0-7) 3 samples kept under half the
input's vessel pixels, against 5 without it, and the optic disc was lost by the
bright-pixel count (under 0.3 of the input's brightest 0.5%) in 1 against 3 (0.2 did the
same); on the tests' fundus (seeds 0-2) the sample with the fewest vessels kept 0.61 of
the input's vessel pixels (with 1, 0.56; with 2, 0.48)."""
COMPLETE_UP_TO = 64
"""In a sparse texture, or a sparse field inside a frame that is not round, above diversity
1 the searches at the levels up to this side (14 to 61 px at 256) favour the source
patches the estimate does not show yet (see _search.completing_nearest), so the galaxies
that a stronger start scatters come back. (A fundus photo's start level, 61 px, takes
FIELD_ALPHA.)"""
ALPHA = 1.0
"""That search's alpha at diversity 2, as a multiple of the level's typical match distance;
it is ALPHA / (diversity - 1), a stronger pull towards completeness as diversity rises."""
SETTLED = 0.002
"""A patch none of whose values moved by this much (about half a grey level) since a round
at its level searched it keeps that round's answer: rounded to 8 bits it is nearly always
the same patch. At the levels with several rounds most patches settle within a few
(coffee at 144 px, the share that moved less than 0.004 since the round before: 69% in
the second round, 89% in the third, 98% from the fifth), and a sample spent two thirds of
its time searching. A level's first round treats the patches carried up from the coarser
level as searched (see Pyramid.carried): two in three at 192 and 256 px vote back their
carried source patch within SETTLED. Not at the coarsest level (see refine)."""
CACHED_SOURCES = 2
"""Pyramids (with their search indexes) kept for the next samples of the same picture."""


@dataclass(frozen=True)
class Settings:
    """What a diversity value means for the generator."""

    coarsest: int
    """The side of the level the start is at (see depth)."""
    copy_limit: float | None
    """None: near-copies are what was asked for, nothing is re-drawn."""
    noise: float = 0.0
    warp: float = 0.0
    mirror: float = 0.0
    exclusive: bool = False
    """Whether the coarsest level shows each part of the source at one place only (see
    _exclusive), so that a re-composed layout seldom draws a subject twice."""
    alpha: float | None = None
    """In a sparse texture or field, the coarse levels' completeness term (see ALPHA); None:
    plain nearest neighbours."""
    warp_grid: int = WARP_GRID
    """The side of the warp's grid of displacements (see structured_start)."""
    turn: float = 0.0
    """Std of the start's turn about the middle of the picture inside its frame, in degrees
    (see TURN)."""
    seams: float | None = None
    """Share of the side moved along seams (see _seams); None: a warp and noise start."""
    moves: int = 1
    """How many times the seams move the picture (see chained_start)."""
    flip_every: int | None = None
    """One sample of every this many of a request comes out mirrored (see FLIP_EVERY)."""
    apart: float = 0.0
    """How much dearer a place beside a removed seam is for the next (see _seams.APART)."""
    shears: bool = False
    """Whether the shears of inserted seams count as tears (see _seams.torn_outlines). Only
    for a single move: marked in each of the chained moves too, more of each settle was put
    back rigidly, and chelsea's samples varied less at 3 than at 2 (seeds 0-7: 0.692 at 2,
    0.676 at 3; unmarked, 0.673 and 0.696)."""
    agree: bool = False
    """Whether near a tear the wide rounds take the rigid pieces only where they agree (see
    AGREE). Only for a single move: taken only where they agreed in the chained moves too
    (from 2 up), coffee's samples at 2 were further from the source at the coarse scale
    (coarse coherence 102 against 85, seeds 0-3) with more pointed rims, and a faint
    upright in a sky leaned at 3 (tests/test_engine.py). Likely why: there each move's
    origins are followed through the settle before it patch by patch (see
    settled_origins), so neighbouring pixels' origins jump where a settle changed its
    choice, and pieces that disagree there may still be what holds an outline."""
    straight: bool = False
    """Whether every seam is straight, a whole column or row (see _seams.STRAIGHT_BIAS): in a
    picture with a plain region (see _seams.PLAIN_REGION), in every move. Leaned by the
    chained moves from 2 up, rocket's towers broke in about 14 of 16 samples at 2 and 16 at
    3 (seeds 0-3, by eye); kept straight through the sky only (the forty-second session) in
    about 7 and 10. Seams kept straight through plain regions in every picture made
    chelsea's samples vary less at 3 than at 2 (means over seeds 0-3: 0.690 and 0.684); it
    has no plain region."""

    @classmethod
    def for_diversity(
        cls, diversity: float, *, sparse: bool, texture: bool, plain: bool, field: bool
    ) -> Settings:
        """Two regimes, so that a value below 1 changes less than the default.

        Below 1, a gentle variation: the source, smoothly warped by a few pixels, is the
        start at a middle level, with no noise. The patch search there keeps each region
        where the warp put it, so the layout stays and shapes shift a little; a near-copy
        is what was asked for. (A coarse start with little noise does not do this: the
        search falls back to an exact copy, and the re-draws that followed made 0.5 vary
        as much as 1 or more on 3 of the 7 benchmark photos.) In a picture with a ``plain``
        region (a sky, see _seams.PLAIN_REGION) the start below 1 is by straight seams
        instead, their share in proportion to diversity: the warp bent what stands
        in the sky, and the rounds redrew rocket's towers or body broken in 5 of 16 samples
        at 0.5 (seeds 0-3, by eye), where seams moved them whole in 15. In a picture of
        detail seams at 0.5 varied the samples about as much as at 1 (the astronaut 0.474
        against 0.485, coffee 0.360 against 0.426), so the warp stays.

        From 1 up, a picture with a layout (neither ``texture`` nor ``sparse``) starts at a
        middle level from the source with its parts moved along seams (see _seams): one
        subject, whole, in a new arrangement, where a re-composition drew a second suit,
        four eyes or a cup cut in half. The share moved grows in proportion to diversity;
        from 2 up it is split into as many moves as the integer part of diversity, each
        from the last one settled (see chained_start), and a share of the samples is
        mirrored (FLIP_EVERY). Until the twenty-ninth session, from 2 up the coarsest
        level re-composed these pictures too, and their samples were collages (four
        badges, two faces, a cup cut by a second one).

        A texture or a sparse picture, from 1 up, is re-composed from the coarsest level,
        which shows each part of the source at one place at every value (see _exclusive),
        so a subject is seldom drawn twice. Turning the knob up strengthens the start: the
        warp grows in proportion to diversity, the noise as diversity**1.5 (0.25, 0.71 and
        1.30 at 1, 2 and 3). Measured over seeds 0-15 (4 samples each), when this start
        served every picture, the samples' diversity rose from 1 to 2 to 3 on all 7
        benchmark photos. Schedules tried before fell short, because at a given strength
        the one-place rule holds a layout that plain nearest neighbours let go (means over
        seeds 0-3, rising on):
        - from 2 up plain nearest neighbours, the noise in proportion to diversity and the
          warp with its square root: 6 of 7 (astronaut's samples at 2 converged on two
          astronauts side by side and varied less than at 1: 0.567 against 0.595);
        - the one-place rule at every value with that schedule: 4 of 7;
        - the one-place rule, the warp in proportion, the noise with the square root: 1 of 7;
        - plain nearest neighbours from 2 up with a start zoomed in at random: 5 of 7.
        What loses content also lowers the samples' variety: a coarser start (10 px has 16
        patches) drops rare content (rocket's lights), and the samples converge on the
        dominant texture.

        A ``sparse`` picture, a sparse texture (a starfield) or a sparse field inside a
        frame that is not round (SPARSE_FIELD: line art or text inside a margin), keeps the
        gentler schedule: the noise in proportion to diversity, the warp with its square
        root (with the stronger one, a fundus photo's samples at 3 showed the optic disc in
        fewer samples, when it took this schedule, and at diversity**1.5 noise varied less
        at 3 than at 2). Above 1 it also pulls its coarse levels towards completeness
        (ALPHA): stronger noise alone scattered its few things into an empty field. Without
        the pull a starfield's measured diversity stayed flat (0.351, 0.349, 0.346 at 1, 2,
        3; with it 0.351, 0.408, 0.437, means over seeds 0-3), and a fundus photo's inside
        turned into a plain orange field without the optic disc and most vessels. In other
        pictures the same pull forces rare parts (a cup's handle, the lights, a face) into
        places they do not fit, as smears.

        A sparse ``field`` inside a round frame (a fundus photo), from 1 up, starts at a
        middle level from the source turned a little and gently warped (see TURN), and
        from 2 up a share of its samples is mirrored (FLIP_EVERY): its optic disc and
        macula stay whole and once, where a re-composition from the coarsest level lost
        the disc in most samples. The turn does not grow with diversity; the mirrored
        samples make the step.
        """
        layout, gentle = not (sparse or texture or field), diversity < 1
        if field and not gentle:
            return cls(
                coarsest=FIELD_COARSEST,
                copy_limit=COPY_LIMIT,
                warp=FIELD_WARP,
                alpha=FIELD_ALPHA,
                warp_grid=GENTLE_WARP_GRID,
                turn=TURN,
                flip_every=flip_every(diversity),
            )
        if layout and (plain or not gentle):
            moves = max(1, math.floor(diversity))
            return cls(
                coarsest=SEAMS_COARSEST,
                copy_limit=None if gentle else COPY_LIMIT,
                seams=SEAMS * diversity / moves,
                moves=moves,
                flip_every=flip_every(diversity),
                apart=APART if diversity >= APART_FROM else 0.0,
                shears=moves == 1,
                agree=moves == 1,
                straight=plain,
            )
        if gentle:
            return cls(
                coarsest=GENTLE_COARSEST,
                copy_limit=None,
                warp=GENTLE_WARP * diversity,
                warp_grid=GENTLE_WARP_GRID,
            )
        return cls(
            coarsest=COARSEST,
            copy_limit=COPY_LIMIT,
            noise=NOISE * diversity ** (1.0 if sparse else 1.5),
            warp=WARP * diversity ** (0.5 if sparse else 1.0),
            mirror=MIRROR,
            exclusive=True,
            alpha=ALPHA / (diversity - 1) if sparse and diversity > 1 else None,
        )

    def stronger(self) -> Settings:
        """The settings for a re-draw after a near-copy (after ALTERNATIVES of them, for a
        start by seams). A start by seams grows by STEP too, but no further than
        SEAMS_MOST: carved up to 2.6 times the share at 1 (the share times STEP**2), a face
        came out cut by the border and a helmet spread over half the picture (the astronaut
        at seed 7 in the README's demo); re-drawn at the same share, rocket's samples varied
        too little (0.221 over seeds 0-3)."""
        seams = None if self.seams is None else min(self.seams * STEP, SEAMS_MOST)
        return replace(
            self, noise=self.noise * STEP, warp=self.warp * STEP, turn=self.turn * STEP, seams=seams
        )


def flip_every(diversity: float) -> int | None:
    """One sample of every this many of a request comes out mirrored (see FLIP_EVERY);
    None below 2."""
    whole = math.floor(diversity)
    return FLIP_EVERY[min(whole, 3)] if whole > 1 else None


def depth(size: int, coarsest: int) -> int:
    """The index of the level about ``coarsest`` wide, in a pyramid from ``size`` (level 0)."""
    return max(0, round(math.log(coarsest / size) / math.log(RATIO)))


def rounds(level_size: int, *, coarsest: bool, seams: bool) -> int:
    """Replace-and-average rounds at a level: several where they are cheap, fewer at the
    fine levels, which start from the coarser level's patch choices and settle detail; more
    after a start by ``seams`` (see SEAMS_ROUNDS)."""
    if seams and level_size <= REPAIR_UP_TO:
        return SEAMS_ROUNDS if coarsest else REPAIR_ROUNDS
    if coarsest:
        return 2
    if level_size <= 64:
        return 4
    return 3 if level_size < 200 else 1


def copy_fraction(nnf: np.ndarray, grid: int, counted: np.ndarray | None = None) -> float:
    """Share of the patch grid (grid x grid) that follows its most common shift, +-1 px;
    of the ``counted`` patches only, if given (a frame's own patches are no copy)."""
    sy, sx = np.divmod(nnf, grid)
    oy, ox = np.divmod(np.arange(grid * grid), grid)
    span = 2 * grid + 1
    codes = (sy - oy + grid) * span + (sx - ox + grid)
    if counted is not None:
        codes = codes[counted]
    hist = np.bincount(codes, minlength=span * span).reshape(span, span)
    padded = np.pad(hist, 1)
    near = np.sum([padded[a : a + span, b : b + span] for a in range(3) for b in range(3)], axis=0)
    return float(near.max()) / max(1, len(codes))


@dataclass(frozen=True)
class Result:
    """A generated image, its finest-level NNF, how many near-copies were re-drawn, the
    vote's centre weighting (for a larger output's vote) and whether the output is to be
    mirrored left to right (after that vote; see FLIP_EVERY)."""

    image: np.ndarray
    nnf: np.ndarray
    redraws: int
    centre: float | None
    mirrored: bool


class Pyramid:
    """A source's levels (finest first) down to about COARSEST, the smallest any
    diversity starts at, its frame at each level (see _frame), and their search indexes,
    built once per level (when first searched). Every diversity uses the same levels,
    from the one its start is at."""

    def __init__(self, source: np.ndarray) -> None:
        size = source.shape[0]
        self.levels: list[np.ndarray] = []
        for k in range(depth(size, COARSEST) + 1):
            side = max(PATCH + 1, round(size * RATIO**k))
            self.levels.append(resize(source, side, side))
        frame = frame_of(source)
        self.texture = is_texture(self.levels[-1])
        """Whether the layout is a texture: repeats are what it is made of (see _exclusive)."""
        self.sparse = self.texture and is_sparse(source)
        """Whether the picture is small things on a plain background (see SPARSE)."""
        self.vote_centre = SPARSE_VOTE if self.sparse else None
        """The vote's centre weighting: small things on a plain background stay sharp."""
        self.propagates = self.texture and not self.sparse
        """Whether each search offers patches their neighbours' shifts (see _propagate): a
        dense texture, whose regions met in smears."""
        inside = ~LevelFrame.at(frame, size, PATCH).pixels
        sparse_field = frame is not None and is_sparse(source[inside], SPARSE_FIELD)
        self.field = sparse_field and is_round(inside)
        """Whether the picture is a sparse field inside a round frame, a fundus photo: from
        diversity 1 up its start is turned (see TURN)."""
        self.completes = self.sparse or (sparse_field and not self.field)
        """Whether above diversity 1 the coarse searches favour what the estimate does not show
        yet (see COMPLETE_UP_TO), with the gentler start (see Settings.for_diversity): a
        sparse texture, or a sparse field inside a frame that is not round (line art or text
        inside a margin)."""
        self.plain = has_plain_region(self.levels[depth(size, SEAMS_COARSEST)])
        """Whether the picture has a plain region, a sky (see _seams.PLAIN_REGION): there the
        seams are straight, and below diversity 1 they move it (see Settings.for_diversity)."""
        self._frame = frame
        self._frames: dict[tuple[int, int], LevelFrame] = {}
        self._indexes: dict[tuple[int, int], PatchIndex] = {}
        self._lock = threading.Lock()

    def frame(self, k: int, patch: int = PATCH) -> LevelFrame:
        """Level ``k``'s frame, with the ``patch``-wide patches centred on it; empty at the
        coarse levels, which re-compose freely."""
        key = (k, patch)
        if key not in self._frames:  # two threads may both make it: the same value
            side = self.levels[k].shape[0]
            self._frames[key] = LevelFrame.at(
                self._frame if side >= FROM_SIZE else None, side, patch
            )
        return self._frames[key]

    def nearest(
        self,
        k: int,
        queries: np.ndarray,
        check_cancel: Callable[[], None],
        patch: int = PATCH,
        *,
        places: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Level ``k``'s nearest ``patch``-wide patch to each query (its index among all the
        level's patches that wide) and the squared distance; patches centred on a frame are
        not offered. ``places``: see PatchIndex.nearest."""
        found, distances = self._index(k, patch).nearest(queries, check_cancel, places=places)
        return self._offered(k, patch)[found], distances

    def carried(self, k: int, nnf: np.ndarray, queries: np.ndarray) -> Answers:
        """The NNF carried up to level ``k`` (``nnf``, flat) as a search's answers to
        ``queries``, the patches of the picture it votes: each as if searched when it was
        its carried source patch, so that the first round searches only the patches that
        differ from theirs by SETTLED or more (see search_moved). Each keeps its distance
        to its carried patch, as a search measures it; a patch carried onto a frame is
        searched again, since searches do not offer it."""
        keys = patches_at(self.levels[k], nnf, PATCH)
        distances = self._index(k, PATCH).distances(queries, keys)
        keys[self.frame(k).centred.ravel()[nnf]] = np.inf
        return Answers(keys, nnf, distances)

    def anchored(self, k: int, origins: np.ndarray, patch: int) -> np.ndarray:
        """For each ``patch``-wide patch of an image drawn at level ``k`` (``origins``:
        where each of its pixels came from in the level, a row and column each), the
        level's patches centred within ANCHOR px of where its centre came from: a row of
        (2 * ANCHOR + 1)**2 indexes per patch (see nearest_to)."""
        side = self.levels[k].shape[0]
        grid = side - patch + 1
        half = patch // 2
        rows, columns = pixels_of(origins[half : half + grid, half : half + grid], side)
        steps = np.arange(-ANCHOR, ANCHOR + 1)
        rows = np.clip(rows.ravel()[:, None, None] - half + steps[:, None], 0, grid - 1)
        columns = np.clip(columns.ravel()[:, None, None] - half + steps[None, :], 0, grid - 1)
        return (rows * grid + columns).reshape(grid * grid, -1)

    def nearest_to(
        self, k: int, queries: np.ndarray, candidates: np.ndarray, patch: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """As nearest, but each query compared only with its own ``candidates`` (see
        anchored)."""
        keys = extract(self.levels[k], patch)
        return nearest_among(queries, keys, candidates, ~self.frame(k, patch).centred.ravel())

    def completing(
        self, k: int, queries: np.ndarray, alpha: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """As nearest, with GPNN's completeness term (see _search.completing_nearest)."""
        offered = self._offered(k, PATCH)
        keys = extract(self.levels[k], PATCH)[offered]
        found, distances = completing_nearest(queries, keys, alpha)
        return offered[found], distances

    def _offered(self, k: int, patch: int) -> np.ndarray:
        """The indexes of level ``k``'s ``patch``-wide patches offered to searches (not
        centred on a frame)."""
        return np.flatnonzero(~self.frame(k, patch).centred)

    def _index(self, k: int, patch: int) -> PatchIndex:
        """Level ``k``'s search index over its offered ``patch``-wide patches, built when
        first searched (the completing search needs none)."""
        with self._lock:  # two samples of one picture build each index once, not twice
            if (k, patch) not in self._indexes:
                keys = extract(self.levels[k], patch)[self._offered(k, patch)]
                self._indexes[k, patch] = PatchIndex(keys)
            return self._indexes[k, patch]


def is_sparse(pixels: np.ndarray, share: float = SPARSE) -> bool:
    """Whether ``pixels`` (RGB, any shape) are small things on a plain background: the tenth
    furthest from their median colour carry at least ``share`` of the squared distance to it
    (see SPARSE)."""
    colours = pixels.reshape(-1, 3)
    far = np.abs(colours - np.median(colours, axis=0)).max(axis=1) ** 2
    cut = far.size - far.size // 10
    return bool(np.partition(far, cut)[cut:].sum() >= share * far.sum())


_pyramids: OrderedDict[bytes, Pyramid] = OrderedDict()
_pyramids_lock = threading.Lock()


def pyramid_for(source: np.ndarray) -> Pyramid:
    """The source's pyramid, shared by the samples of one picture at any diversity (an n=4
    request builds its indexes once)."""
    key = hashlib.blake2b(source.tobytes(), digest_size=16).digest()
    with _pyramids_lock:
        if key not in _pyramids:
            _pyramids[key] = Pyramid(source)
            while len(_pyramids) > CACHED_SOURCES:
                _pyramids.popitem(last=False)
        _pyramids.move_to_end(key)
        return _pyramids[key]


def clear_cache() -> None:
    """Forget the cached pyramids (for measuring a fresh start)."""
    with _pyramids_lock:
        _pyramids.clear()


def synthesize(
    source: np.ndarray,
    diversity: float,
    rng: np.random.Generator,
    check_cancel: Callable[[], None],
    *,
    place: int = 0,
) -> Result:
    """A new image the size of ``source`` (square float RGB, side >= 2 * PATCH), as far
    from it as ``diversity`` asks (see Settings.for_diversity); ``place`` counts the
    samples of a request (seed + index), so that a share of them is mirrored."""
    pyramid = pyramid_for(source)
    settings = Settings.for_diversity(
        diversity,
        sparse=pyramid.completes,
        texture=pyramid.texture,
        plain=pyramid.plain,
        field=pyramid.field,
    )
    every = settings.flip_every
    mirrored = every is not None and place % every == every - 1
    first = depth(source.shape[0], settings.coarsest)
    sizes = [level.shape[0] for level in pyramid.levels[: first + 1]]
    # The finest level checked for near-copies: the coarsest one at least as wide as asked.
    check_size = CHECK_SIZE if settings.seams is None else SEAMS_CHECK_SIZE
    check_level = max(k for k, s in enumerate(sizes) if s >= min(check_size, sizes[0]))
    redraws = 0
    while True:
        for start in islice(draw_starts(pyramid, first, settings, rng, check_cancel), ALTERNATIVES):
            limit = settings.copy_limit if redraws < REDRAWS else None
            drawn = run_levels(
                pyramid,
                first,
                start,
                check_cancel,
                check_level,
                limit,
                exclusive=settings.exclusive,
                alpha=settings.alpha,
            )
            if drawn is not None:
                return Result(drawn[0], drawn[1], redraws, pyramid.vote_centre, mirrored)
            redraws += 1
        settings = settings.stronger()


def draw_starts(
    pyramid: Pyramid,
    first: int,
    settings: Settings,
    rng: np.random.Generator,
    check_cancel: Callable[[], None],
) -> Iterator[Start]:
    """Level ``first`` re-composed as ``settings`` ask: warped (one start), or along seams
    (the drafts of the last move, best first; see chained_start)."""
    if settings.seams is None:
        inside = ~pyramid.frame(first).pixels
        yield Start(structured_start(pyramid.levels[first], settings, rng, inside), None)
    else:
        yield from chained_start(pyramid, first, settings, rng, check_cancel)


class Start(NamedTuple):
    """The start at a pyramid level, and for a start by seams, where they tore outlines."""

    pixels: np.ndarray
    tear: Tear | None


class Tear(NamedTuple):
    """Where a start by seams tore the outlines of the picture it moved (see shape_rounds)."""

    origins: np.ndarray
    """Where each pixel came from in the source's level: row and column (rows, columns, 2)."""
    near: np.ndarray
    """How near each pixel is to a torn outline, from 0 to 1 (rows, columns, 1; see
    TORN_PIXELS)."""
    agree: bool
    """Whether the rigid pieces that mend it are taken only where they agree (see
    Settings.agree)."""


def chained_start(
    pyramid: Pyramid,
    first: int,
    settings: Settings,
    rng: np.random.Generator,
    check_cancel: Callable[[], None],
) -> Iterator[Start]:
    """Level ``first`` moved along seams ``settings.moves`` times (see seams_start), each
    move but the last settled by the rounds at that level, so that the next one moves the
    source's own patches again, not what the last one stretched. In one move, the shares
    that vary a picture as much as 2 and 3 do (0.4 and 0.6 of the side) split, stretched
    or doubled the astronaut's face in 3 of 4 samples; in moves of 0.2, settled between,
    the face stays whole. From 3 up the removed seams are kept apart (see APART_FROM):
    else each move widened a cup again. Yields the last move's drafts, the one to keep
    first (see seams_start)."""
    share = settings.seams
    assert share is not None
    picture = pyramid.levels[first]
    side = picture.shape[0]
    # Where each pixel of ``picture`` came from in the level: at first, its own place.
    came_from = np.moveaxis(np.indices((side, side), np.float32), 0, -1)

    def carved(picture: np.ndarray) -> list[Draft]:
        return seams_start(
            pyramid,
            first,
            picture,
            share,
            rng,
            check_cancel,
            apart=settings.apart,
            straight=settings.straight,
        )

    def started(draft: Draft, picture: np.ndarray, came_from: np.ndarray) -> Start:
        origins = came_from[pixels_of(draft.origins, side)]
        near = near_tears(picture, draft.origins, shears=settings.shears)
        return Start(draft.pixels, Tear(origins, near, settings.agree))

    for _ in range(settings.moves - 1):
        start = started(carved(picture)[0], picture, came_from)
        nnf, picture = refine(
            pyramid,
            first,
            start.pixels,
            check_cancel,
            carried=None,
            tear=start.tear,
            one_place=False,
            alpha=None,
        )
        came_from = settled_origins(nnf, side)
    for draft in carved(picture):
        yield started(draft, picture, came_from)


def near_tears(picture: np.ndarray, origins: np.ndarray, *, shears: bool) -> np.ndarray:
    """How near each pixel of a draft of ``picture`` (``origins``: where each came from) is
    to the places where its seams tore an outline (see TORN_PIXELS; ``shears``, see
    _seams.torn_outlines)."""
    torn = torn_outlines(picture, origins, shears=shears).astype(np.float32)
    count = window_mean(torn, TORN_PATCH) * TORN_PATCH**2
    return window_mean(np.minimum(count / TORN_PIXELS, 1.0), PATCH)[..., None]


def settled_origins(nnf: np.ndarray, side: int) -> np.ndarray:
    """Where each pixel of a level settled from ``nnf`` (side x side) came from in the
    source's level: its place in the source patch chosen for the patch centred on it (the
    nearest patch, at the borders)."""
    grid = side - PATCH + 1
    place = np.arange(side)
    patch = np.clip(place - PATCH // 2, 0, grid - 1)
    chosen = nnf[np.ix_(patch, patch)]
    within = np.stack(np.meshgrid(place - patch, place - patch, indexing="ij"), axis=-1)
    return (np.stack(np.divmod(chosen, grid), axis=-1) + within).astype(np.float32)


def structured_start(
    level: np.ndarray, settings: Settings, rng: np.random.Generator, inside: np.ndarray
) -> np.ndarray:
    """The start's level re-composed: mirrored, smoothly warped and turned, plus noise. A
    pixel of the ``inside`` of a frame (a boolean mask) that would come from the frame keeps
    its own value, so that no piece of the frame is moved into the picture."""
    size = level.shape[0]
    if rng.random() < settings.mirror:
        level = level[:, ::-1]
    grid = settings.warp_grid
    shift = rng.standard_normal((2, grid, grid)).astype(np.float32)
    # resize works on [0, 1] images: the field is drawn around 0, so it is shifted there and back.
    field = np.stack(
        [resize((s[..., None] + 4.0) / 8.0, size, size)[..., 0] * 8.0 - 4.0 for s in shift]
    )
    rows, cols = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    y = rows + field[0] * settings.warp * size
    x = cols + field[1] * settings.warp * size
    if settings.turn:
        y, x = _turned(y, x, math.radians(settings.turn * rng.standard_normal()), inside)
    y, x = _reflect(y, size), _reflect(x, size)
    warped = _bilinear(level, y, x)
    from_frame = ~inside[np.rint(y).astype(np.int64), np.rint(x).astype(np.int64)]
    warped = np.where((inside & from_frame)[..., None], level, warped)
    noise = settings.noise * rng.standard_normal(level.shape, dtype=np.float32)
    return (warped + noise).astype(np.float32)


def seams_start(
    pyramid: Pyramid,
    first: int,
    picture: np.ndarray,
    share: float,
    rng: np.random.Generator,
    check_cancel: Callable[[], None],
    *,
    apart: float,
    straight: bool,
) -> list[Draft]:
    """``picture`` (level ``first`` or one settled from it) with its parts moved along
    ``share`` of its side in seams (see _seams; ``apart``, see _seams.APART; ``straight``,
    see _seams.STRAIGHT_BIAS): DRAFTS such drafts, the one to keep first. They are scored by how
    near their worst-matched patches (DRAFT_QUANTILE) lie to the source's: those scored
    within UNSEEN come first, the one whose detail moved furthest first, then the others,
    the best scored first (a draw that comes out a near-copy is drawn again from the next,
    see ALTERNATIVES). Where a draft stretched an edge or a face, its patches match badly
    there; keeping the best of 8 lowered the worst-patch figure by 0-40% and coarse
    coherence by 3-50% (seeds 0-3, 5 photos), for about 0.02 s a draft.

    Drafts that are near-copies already (more than COPY_LIMIT of their patches matched at
    one shift) are left out while another is not. The best-scored draft is often the one
    that moved least, and the check at SEAMS_CHECK_SIZE then re-drew it with more seams:
    7 of 8 coffee samples and 6 of 8 of the cat's (seeds 0-1), widening and waving the cup.
    Passed over here, 1 of 8 and none; over seeds 0-3 the 7 benchmark photos' coarse
    coherence fell from 0.747x the old engine's to 0.702x, the worst-patch figure from
    0.693x to 0.683x (with COPY_LIMIT 0.5 here, coarse coherence rose again)."""
    grid = pyramid.levels[first].shape[0] - PATCH + 1
    counted = ~pyramid.frame(first).centred.ravel()
    drafts = []
    moves = draw_moves(share, DRAFTS, rng)
    for pixels, moved, origins in recompose(picture, *moves, apart=apart, straight=straight):
        check_cancel()
        found, distances = pyramid.nearest(first, extract(pixels, PATCH), check_cancel)
        mismatch = float(np.quantile(distances, DRAFT_QUANTILE))
        copy = copy_fraction(found, grid, counted)
        drafts.append(Draft(mismatch, moved, copy, pixels, origins))
    drafts = [draft for draft in drafts if draft.copy <= COPY_LIMIT] or drafts
    unseen = [draft for draft in drafts if draft.mismatch <= UNSEEN]
    seen = [draft for draft in drafts if draft.mismatch > UNSEEN]
    return sorted(unseen, key=lambda draft: -draft.moved) + sorted(
        seen, key=lambda draft: draft.mismatch
    )


class Draft(NamedTuple):
    """A start by seams (see seams_start)."""

    mismatch: float
    """DRAFT_QUANTILE of its patches' squared distances to the nearest source patch."""
    moved: float
    """How far its detail moved from the source, on average, in pixels (see _seams)."""
    copy: float
    """Share of its patches whose nearest source patch lies at one shift (see copy_fraction)."""
    pixels: np.ndarray
    origins: np.ndarray
    """Where each pixel came from in the picture moved (see _seams.recompose)."""


def _turned(
    y: np.ndarray, x: np.ndarray, angle: float, inside: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates ``y``, ``x`` turned by ``angle`` (radians) about the middle of ``inside``."""
    rows, cols = np.nonzero(inside)
    y0, x0 = rows.mean(), cols.mean()
    cos, sin = math.cos(angle), math.sin(angle)
    return (
        y0 + (y - y0) * cos - (x - x0) * sin,
        x0 + (y - y0) * sin + (x - x0) * cos,
    )


def _reflect(coordinate: np.ndarray, size: int) -> np.ndarray:
    """Coordinates folded back into [0, size - 1] at the borders (mirror, not clamp)."""
    period = 2 * (size - 1)
    folded = np.mod(coordinate, period)
    return np.where(folded > size - 1, period - folded, folded)


def _bilinear(image: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    size = image.shape[0]
    y0 = np.minimum(np.floor(y).astype(np.int64), size - 2)
    x0 = np.minimum(np.floor(x).astype(np.int64), size - 2)
    fy, fx = (y - y0)[..., None], (x - x0)[..., None]
    top = image[y0, x0] * (1 - fx) + image[y0, x0 + 1] * fx
    bottom = image[y0 + 1, x0] * (1 - fx) + image[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def run_levels(
    pyramid: Pyramid,
    first: int,
    start: Start,
    check_cancel: Callable[[], None],
    check_level: int,
    copy_limit: float | None,
    *,
    exclusive: bool,
    alpha: float | None,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Coarse-to-fine PNN from ``start`` at level ``first``: the image and NNF, or None for a
    near-copy (more than ``copy_limit`` of level ``check_level`` rigidly shifted; None: no
    check).

    Each level after the coarsest starts from the coarser level's patch choices carried
    up (NNF upsampling, above ALIGN_ABOVE the border's aligned with the coarser picture),
    which gives a sharp estimate, then refines it with searches. With
    ``exclusive``, the coarsest level's searches show each source pixel at one place,
    unless the picture is a texture; with ``alpha`` (a sparse texture or field's, see
    Settings.for_diversity), the searches up to COMPLETE_UP_TO favour what the estimate does
    not show yet. A picture's frame stays in place (see _frame).
    """
    levels = pyramid.levels
    centre = pyramid.vote_centre
    estimate = start.pixels
    nnf: np.ndarray | None = None
    for k in range(first, -1, -1):
        check_cancel()
        target = levels[k]
        size = target.shape[0]
        grid = size - PATCH + 1
        frame = pyramid.frame(k)
        if nnf is not None:
            nnf = upsample_nnf(nnf, grid, PATCH)
            if size > ALIGN_ABOVE:
                nnf = align_border(nnf, target, resize(estimate, size, size), PATCH)
            nnf = frame.pin(nnf)
            estimate = vote(target, nnf, PATCH, centre=centre)
        coarsest = nnf is None
        nnf, estimate = refine(
            pyramid,
            k,
            estimate,
            check_cancel,
            carried=None if coarsest else nnf,
            tear=start.tear,
            one_place=coarsest and exclusive and not pyramid.texture,
            alpha=alpha if size <= COMPLETE_UP_TO else None,
        )
        if (
            k == check_level
            and copy_limit is not None
            and nnf is not None
            and copy_fraction(nnf.ravel(), grid, ~frame.centred.ravel()) > copy_limit
        ):
            return None
    assert nnf is not None  # level ``first`` at least was refined
    return estimate, nnf


def refine(
    pyramid: Pyramid,
    k: int,
    estimate: np.ndarray,
    check_cancel: Callable[[], None],
    *,
    carried: np.ndarray | None,
    tear: Tear | None,
    one_place: bool,
    alpha: float | None,
) -> tuple[np.ndarray, np.ndarray]:
    """The rounds at level ``k`` (see rounds) from ``estimate``: the NNF and the image.
    ``tear`` is the start's, if it was a start by seams (else None). With ``one_place``,
    the searches show each source pixel at one place (see _exclusive); with ``alpha``, they
    favour what the estimate does not show yet; else each round searches only the patches
    that moved (see search_moved) since the last round, or in the first, from the patch
    ``carried`` up from the coarser level (its NNF, carried to this level; None at the
    coarsest level, where every round searches every patch)."""
    target = pyramid.levels[k]
    frame = pyramid.frame(k)
    estimate = frame.restore(estimate, target)
    coarsest = carried is None
    nnf = None
    answers: Answers | None = None
    for done in range(rounds(target.shape[0], coarsest=coarsest, seams=tear is not None)):
        if tear is not None and coarsest and done == SHAPE_AFTER:
            estimate = shape_rounds(pyramid, k, estimate, tear, check_cancel)
        if one_place:
            found, distances = exclusive_nearest(target, extract(estimate, PATCH), PATCH)
        elif alpha is not None:
            found, distances = pyramid.completing(k, extract(estimate, PATCH), alpha)
        else:
            queries = extract(estimate, PATCH)
            if answers is None and carried is not None:
                answers = pyramid.carried(k, carried.ravel(), queries)
            # At the coarsest level patches keep moving (after a start by seams, 94% of
            # them change their answer each round), and the moves that follow a settle
            # there hang on its every patch: each round searches them all.
            answers = search_moved(pyramid, k, queries, None if coarsest else answers, check_cancel)
            found, distances = answers.found, answers.distances
            if pyramid.propagates:
                offered = ~frame.centred.ravel()
                found, distances = propagate(target, queries, found, offered, check_cancel, PATCH)
                answers = answers._replace(found=found, distances=distances)
        nnf, estimate = replace_patches(pyramid, k, found, distances)
    assert nnf is not None  # every level runs at least one round
    return nnf, estimate


class Answers(NamedTuple):
    """A round's search at a level (see search_moved)."""

    queries: np.ndarray
    """The patches answered, one per row, as they were when last searched."""
    found: np.ndarray
    distances: np.ndarray


def search_moved(
    pyramid: Pyramid,
    k: int,
    queries: np.ndarray,
    last: Answers | None,
    check_cancel: Callable[[], None],
) -> Answers:
    """Level ``k``'s nearest patch to each of ``queries`` and its squared distance, the
    last round's answers (``last``) kept for the queries that have not moved by SETTLED
    since they were searched."""
    if last is None:
        return Answers(queries, *pyramid.nearest(k, queries, check_cancel))
    moved = changed_rows(queries, last.queries, SETTLED)
    searched, found, distances = last.queries.copy(), last.found.copy(), last.distances.copy()
    fresh = queries[moved]
    searched[moved] = fresh
    found[moved], distances[moved] = pyramid.nearest(k, fresh, check_cancel, places=moved)
    return Answers(searched, found, distances)


def shape_rounds(
    pyramid: Pyramid,
    k: int,
    estimate: np.ndarray,
    tear: Tear,
    check_cancel: Callable[[], None],
) -> np.ndarray:
    """SHAPE_ROUNDS rounds at level ``k`` with SHAPE_PATCH-wide patches: outlines that a
    start by seams bent, put back from rigid pieces of the source's own; near where it
    tore one (``tear``), from TORN_PATCH-wide pieces of the very place it was torn from
    (where those pieces agree, if the tear asks; see AGREE)."""
    # Each round compares its wide patches with the same pieces: the tear does not move.
    candidates = pyramid.anchored(k, tear.origins, TORN_PATCH) if tear.near.any() else None
    for _ in range(SHAPE_ROUNDS):
        queries = extract(estimate, SHAPE_PATCH)
        found, distances = pyramid.nearest(k, queries, check_cancel, SHAPE_PATCH)
        _, shaped = replace_patches(pyramid, k, found, distances, SHAPE_PATCH)
        if candidates is not None:
            queries = extract(estimate, TORN_PATCH)
            found, distances = pyramid.nearest_to(k, queries, candidates, TORN_PATCH)
            nnf, rigid = replace_patches(pyramid, k, found, distances, TORN_PATCH)
            near = tear.near
            if tear.agree:
                weights = vote_weights(pyramid.frame(k, TORN_PATCH), distances)
                spread = window_mean(
                    vote_spread(pyramid.levels[k], nnf, TORN_PATCH, weights), SHAPE_PATCH
                )
                near = near * np.exp(-((spread / AGREE) ** 2))[..., None]
            shaped = near * rigid + (1.0 - near) * shaped
        estimate = shaped
    return estimate


def replace_patches(
    pyramid: Pyramid, k: int, found: np.ndarray, distances: np.ndarray, patch: int = PATCH
) -> tuple[np.ndarray, np.ndarray]:
    """One round's result at level ``k`` from its search (each ``patch``-wide output
    patch's source patch ``found`` and their squared ``distances``): the NNF, with the
    frame's patches pinned, and the vote of the patches it picks, weighted by how well each
    one matched."""
    target = pyramid.levels[k]
    frame = pyramid.frame(k, patch)
    grid = target.shape[0] - patch + 1
    nnf = frame.pin(found.reshape(grid, grid))
    estimate = vote(target, nnf, patch, vote_weights(frame, distances), centre=pyramid.vote_centre)
    return nnf, frame.restore(estimate, target)


def vote_weights(frame: LevelFrame, distances: np.ndarray) -> np.ndarray:
    """Each patch's weight in the vote, on the grid of ``frame``'s patches, from its search's
    squared ``distances``: a patch that matched much worse than is typical here counts less,
    and the frame's own patches (pinned, see LevelFrame.pin) fit exactly."""
    typical = float(np.median(distances)) + 1e-6
    weights = (np.exp(-distances / (2.0 * typical)) + 1e-4).reshape(frame.centred.shape)
    weights[frame.centred] = 1.0
    return weights
