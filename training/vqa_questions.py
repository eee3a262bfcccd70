"""Questions about digit scenes, and their answers, generated from the scene's caption.

A digit scene's caption (training/scenes.py) names its digits left to right in words ("seven two
nine"), so it holds everything the questions ask. The n-th scene of a split, in its order as
loaded, with caption words w_0 .. w_{k-1} (k = 1..5), gets exactly four questions, in this order
(their types in brackets):

0. "how many digits"            -> the number k in words ("one" .. "five")      [count]
1. "is there a <p>"             -> "yes", p = w_{n mod k}: a digit that is there  [exists]
2. "is there a <a>"             -> "no",  a = the (n mod m)-th of the m digit words not in the
                                   caption, in the order zero .. nine (m >= 5)   [exists]
3. "what is the leftmost digit" -> w_0                                          [leftmost]

So "exists" is half yes, half no. The answers are one of `ANSWERS`: the ten digit words, then
"yes" and "no" (12 in all); a model answers by choosing one of them.
"""

from training.scenes import WORDS

ANSWERS = (*WORDS, "yes", "no")
TYPES = ("count", "exists", "leftmost")
QUESTION_TYPES = (0, 1, 1, 2)  # the type of each of a scene's four questions (index in TYPES)
PER_SCENE = len(QUESTION_TYPES)


def questions(caption: str, n: int) -> list[tuple[str, str]]:
    """The four (question, answer) pairs of the n-th scene of a split with this caption."""
    words = caption.split()
    if not words or any(w not in WORDS for w in words):
        raise ValueError(
            f"caption {caption!r}: expected 1..5 digit words ({', '.join(WORDS)}) as digit "
            "scenes have"
        )
    k = len(words)
    absent = [w for w in WORDS if w not in words]
    return [
        ("how many digits", WORDS[k]),
        (f"is there a {words[n % k]}", "yes"),
        (f"is there a {absent[n % len(absent)]}", "no"),
        ("what is the leftmost digit", words[0]),
    ]
