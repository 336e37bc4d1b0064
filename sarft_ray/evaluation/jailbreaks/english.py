"""How English a piece of text looks: the share of its words that are common English words.

Used to tell a cipher-written reply from a plain one. A Caesar-shifted
sentence has almost no common words; the same sentence shifted back has many
(function words alone make up about half of ordinary prose). The measure is
crude on purpose: it only has to separate "readable" from "scrambled".
"""

from __future__ import annotations

import re

# About 400 frequent English words (function words, common verbs and nouns, and the
# vocabulary of refusals and instructions). Lower case; apostrophes are word breaks.
COMMON_WORDS = frozenset(
    """
    a i about above after again against all also always am an and any are around as ask at away
    back be because been before being below best better between both but by
    call came can cannot come could day did different do does doing done down during
    each easy either else end enough even ever every example
    few find first for found from full further get give go going good got great
    had has have having he help her here him his how however
    if important in into is it its just keep kind know
    last least less let like little long look lot made make many may me might more most much must my
    need never new next no not nothing now of off often old on once one only or other our out over own
    part people place please point put rather really right
    said same say see should show since so some something still such sure
    take tell than thank thanks that the their them then there these they thing things think this
    those though through time to too try two under until up upon us use used using
    very want was way we well were what when where whether which while who why will with without
    would write yes yet you your
    able access account act action activity advice against ai already always answer anyone anything
    appropriate assist assistance assistant attack avoid aware bad behavior behaviour believe bomb
    build businesses can care careful case cause certain change chemical child children code company
    computer consider content contact create crime criminal damage danger dangerous data decline
    detail details device discuss do drug drugs email encourage engage ensure ethical everyone
    explain false fake feel following food friend fulfill fulfil gather goal government guide guidelines
    hack hacking harm harmful hate health hurt idea illegal information instead instructions
    internet involve issue kill language law laws learn legal life list looking malicious manipulate
    material materials message method model money moral name network numbers online others password
    person personal physical plan police policy possible post potential prevent private problem
    process product program promote protect provide public question questions recipe refuse report
    request requests resources respect responsible risk safe safety script secure security sensitive
    serious share site social software someone sorry speak specific start step steps steal story
    support system target team technology terms text tips tool tools tutorial understand unethical
    unable user violence violent weapon weapons website within word work world wrong
    again okay sorry apologize apologies glad happy hope mind sure certainly course absolutely
    """.split()
)

_WORD = re.compile(r"[a-z]+")


def words(text: str) -> list[str]:
    """Lower-case letter runs; single letters other than "a" and "i" are dropped
    (they are mostly contraction tails such as the t of can't)."""
    return [w for w in _WORD.findall(text.lower()) if len(w) > 1 or w in ("a", "i")]


def english_rate(text: str) -> float:
    """Share of the words of ``text`` that are common English words (0.0 without words)."""
    found = words(text)
    return sum(w in COMMON_WORDS for w in found) / len(found) if found else 0.0
