"""Near-duplicate detection: the MinHash LSH library functions and the ``near_dedup``
cleaner, including a labelled accuracy check on realistic support tickets."""

from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import validate
from tunelab.api import StageContext
from tunelab.config import ConfigError
from tunelab.data.cache import prepare
from tunelab.data.ledger import read_ledger
from tunelab.plugins import get_plugins
from tunelab_builtin._lib.minhash import (
    EMPTY_SLOT,
    candidate_probability,
    cross_duplicates,
    lsh_bands,
    minhash_signatures,
    near_duplicate_clusters,
    normalize_for_shingles,
)
from tunelab_builtin.cleaners.near_dedup import NearDedup, NearDedupConfig

# --- a labelled near-duplicate set -------------------------------------------------
# Distinct tickets (question, answer) grouped by topic, so tickets of one topic share
# topic words ("refund", "order", "business days", "Account settings").
TICKETS: dict[str, list[tuple[str, str]]] = {
    "refund": [
        (
            (
                "I returned the Kestrel 45 backpack two weeks ago and still have not received my refund. Can you check "
                "what is going on?"
            ),
            (
                "Sorry for the wait. Your return arrived on Monday and the refund was issued today; it usually takes 5 "
                "to 7 business days to appear on your card statement."
            ),
        ),
        (
            "Can I get my refund as store credit instead of back to my card? I would like to use it on a new tent.",
            (
                "Yes, we can do that. Reply with your order number and we will convert the refund into store credit, "
                "which you can use right away on any order."
            ),
        ),
        (
            "My refund was less than what I paid for the jacket. Why was money taken off?",
            (
                "Refunds cover the item price; the original shipping fee is not refunded unless the item arrived "
                "damaged or we sent the wrong size."
            ),
        ),
        (
            "How long does a refund take if I paid with PayPal?",
            (
                "Refunds to PayPal are usually instant once we process the return. If you do not see it within 24 "
                "hours, check the PayPal activity page or contact PayPal support."
            ),
        ),
        (
            "I cancelled my order before it shipped but I was still charged. When will I get the money back?",
            (
                "Because the order was cancelled before shipping, no payment was captured. The pending charge is an "
                "authorization and your bank will release it within 3 to 5 business days."
            ),
        ),
        (
            "The refund for my sleeping bag went to my old card which has expired. What happens to the money?",
            (
                "Your bank will forward the refund to your new card or account automatically. If it has not arrived "
                "after 10 days, please ask your bank to trace the credit."
            ),
        ),
    ],
    "shipping": [
        (
            "My parcel has been stuck in transit for five days and the tracking page has not updated. Is it lost?",
            (
                "Parcels sometimes stop scanning at busy sorting centres. If there is no update within two more "
                "business days we will open a claim with the carrier and send a replacement."
            ),
        ),
        (
            "Do you ship to Canada and how much does it cost?",
            (
                "Yes, we ship to Canada. Standard shipping costs 12 dollars and takes 6 to 9 business days; import "
                "duties may be charged by Canadian customs on delivery."
            ),
        ),
        (
            "Can I change the delivery address after placing the order?",
            (
                "If the order has not been handed to the warehouse yet, we can update the address. Reply with the new "
                "address and your order number and we will try to change it."
            ),
        ),
        (
            "The courier left my package at the wrong house. What should I do?",
            (
                "Please check with your neighbours first. If you cannot find it within 48 hours, let us know and we "
                "will file a misdelivery claim with the courier."
            ),
        ),
        (
            "Is express shipping available for orders placed on Friday evening?",
            (
                "Express orders placed after 2pm on Friday are shipped on Monday, so they usually arrive on Tuesday. "
                "We do not ship at the weekend."
            ),
        ),
        (
            "Why did my order arrive in two separate boxes?",
            (
                "Items are sometimes packed at different warehouses to get them to you faster. Each box has its own "
                "tracking number, which you can see in your order history."
            ),
        ),
    ],
    "account": [
        (
            "I forgot my password and the reset email never arrives. What can I do?",
            (
                "Please check your spam folder and make sure the email address on the account is correct. If the reset "
                "link still does not arrive, we can verify your identity and reset the password for you."
            ),
        ),
        (
            "How do I delete my account and all my data?",
            (
                "You can delete your account under Account settings, Privacy. Deletion is permanent and removes your "
                "order history, saved addresses and wishlist within 30 days."
            ),
        ),
        (
            "Someone logged into my account from another country. Please help me secure it.",
            (
                "I have signed out all active sessions and sent you a password reset link. Please choose a new "
                "password and turn on two-factor authentication in your security settings."
            ),
        ),
        (
            "Can I merge two accounts that I created with different email addresses?",
            (
                "We cannot merge accounts automatically, but we can move your order history to one account. Tell us "
                "which email address you want to keep."
            ),
        ),
        (
            "Why does the app keep logging me out every time I close it?",
            (
                "This happens when the app cannot save your login because of low storage or a blocked cookie setting. "
                "Updating the app to the latest version usually fixes it."
            ),
        ),
        (
            "How do I change the email address on my account?",
            (
                "Go to Account settings, Profile, and enter the new email address. We will send a confirmation link to "
                "the new address, and the change takes effect once you click it."
            ),
        ),
    ],
    "billing": [
        (
            "I was charged twice for the same order. Can you refund the duplicate payment?",
            (
                "Only one payment was captured for your order. The second charge is a pending authorization that your "
                "bank will release within 3 to 5 business days."
            ),
        ),
        (
            "Can I pay with a gift card and a credit card on the same order?",
            (
                "Yes. Enter the gift card code at checkout first; any remaining balance can then be paid with a credit "
                "card or PayPal."
            ),
        ),
        (
            "Why was my card declined when I tried to pay for the order?",
            (
                "Cards are often declined when the billing address does not match the one your bank has on file. "
                "Please check the address, or try another payment method."
            ),
        ),
        (
            "Do you offer invoices with VAT for business customers?",
            (
                "Yes, business customers can add a company name and VAT number at checkout. The invoice is emailed "
                "after shipping and can also be downloaded from your order history."
            ),
        ),
        (
            "My membership renewed even though I cancelled it last month. Can I get the money back?",
            (
                "The cancellation was saved after the renewal date, so the renewal went through. I have refunded the "
                "membership fee and confirmed that it will not renew again."
            ),
        ),
        (
            "Is there a way to pay in instalments for larger orders?",
            (
                "For orders over 150 dollars you can choose to pay in three interest-free instalments at checkout. The "
                "first instalment is charged when the order ships."
            ),
        ),
    ],
    "returns": [
        (
            "How do I return hiking boots that are too small?",
            (
                "You can start a return from your order history within 60 days. Print the prepaid label, pack the "
                "boots in their original box and drop the parcel at any post office."
            ),
        ),
        (
            "Can I exchange a jacket for a different size instead of returning it?",
            (
                "Yes. Choose exchange when you start the return and select the new size. We ship the replacement as "
                "soon as the original is scanned by the carrier."
            ),
        ),
        (
            "The zipper on my tent broke after one trip. Is that covered by the warranty?",
            (
                "Broken zippers are covered by our two-year warranty. Send us a photo of the zipper and your order "
                "number, and we will arrange a free repair or replacement."
            ),
        ),
        (
            "Do I have to pay for return shipping?",
            (
                "Returns are free within the country for members. For other customers a return fee of 5 dollars is "
                "taken off the refund."
            ),
        ),
        (
            "I lost the receipt for a stove I bought in your store. Can I still return it?",
            (
                "Yes, we can look up the purchase with the card you paid with or your account email, so a receipt is "
                "not required."
            ),
        ),
        (
            "What condition do items need to be in to be returned?",
            (
                "Items must be unused, clean and in their original packaging with tags attached. Worn footwear can "
                "only be returned if it has a manufacturing fault."
            ),
        ),
    ],
    "product": [
        (
            "What is the difference between the Ridgeline 2 and the Ridgeline 3 tent?",
            (
                "The Ridgeline 3 is longer and wider, sleeps three people and weighs 600 grams more. Both use the same "
                "poles and have two doors and two vestibules."
            ),
        ),
        (
            "Is the Trailhead boot waterproof enough for hiking in heavy rain?",
            (
                "Yes, the Trailhead has a waterproof membrane and sealed seams. For long wet hikes we recommend "
                "wearing gaiters to keep water out from the top."
            ),
        ),
        (
            "Which sleeping bag do you recommend for winter camping in the mountains?",
            (
                "For winter nights we recommend the Polar 15, which has a comfort rating of minus 9 degrees. Pair it "
                "with an insulated sleeping pad for the best warmth."
            ),
        ),
        (
            "Can the Ember stove be used with any gas canister?",
            (
                "The Ember works with standard screw-thread gas canisters from most brands. It does not fit the older "
                "click-on canisters."
            ),
        ),
        (
            "How do I clean and reproof my waterproof jacket?",
            (
                "Wash it on a gentle cycle with a technical wash, then apply a spray-on reproofer and tumble dry on "
                "low heat to reactivate the coating."
            ),
        ),
        (
            "Does the Kestrel 45 backpack have a rain cover included?",
            (
                "Yes, the Kestrel 45 comes with a rain cover stored in the bottom pocket. It also has a hydration "
                "sleeve and adjustable hip belt."
            ),
        ),
    ],
    "order": [
        (
            "I placed an order an hour ago and want to add another item. Can you combine them?",
            (
                "We cannot add items to an order once it is placed, but if both orders ship on the same day we will "
                "pack them in one box."
            ),
        ),
        (
            "Can I cancel my order? I ordered the wrong colour.",
            (
                "If the order has not been packed yet, we can cancel it. Reply with your order number and we will "
                "cancel it and refund the payment in full."
            ),
        ),
        (
            "My order confirmation email never arrived. Did the order go through?",
            (
                "Yes, your order went through; you can see it in your order history. The confirmation email may have "
                "been filtered as spam."
            ),
        ),
        (
            "One item is missing from my order even though the packing slip lists it.",
            (
                "Please check the box and packing material carefully. If the item is still missing, tell us which one "
                "and we will ship it again at no cost."
            ),
        ),
        (
            "Why is my order still showing as processing after three days?",
            (
                "Orders with pre-order items are held until every item is in stock. You can split the order so the "
                "items in stock ship now."
            ),
        ),
        (
            "Can I order items online and pick them up in a store?",
            (
                "Yes, choose click and collect at checkout and select your store. We email you when the order is "
                "ready, usually within two hours."
            ),
        ),
    ],
    "membership": [
        (
            "What do I get with the Plus membership?",
            (
                "Plus members get free shipping on every order, free returns, early access to sales and a 10 percent "
                "birthday discount. Plus costs 9 dollars per month or 99 dollars per year."
            ),
        ),
        (
            "How do I cancel my Plus membership?",
            (
                "You can cancel any time under Account settings, Membership. Your benefits stay active until the end "
                "of the period you already paid for."
            ),
        ),
        (
            "I joined Plus but my last order still charged shipping. Why?",
            (
                "Free shipping applies to orders placed after the membership starts. Your order was placed a few "
                "minutes before you joined, so I have refunded the shipping fee."
            ),
        ),
        (
            "Can I share my Plus membership with my family?",
            (
                "Plus benefits are linked to one account, but members can add one household member at no extra cost "
                "under Account settings, Membership."
            ),
        ),
        (
            "Will my Plus membership renew automatically?",
            (
                "Yes, Plus renews automatically at the end of each period. We send a reminder email seven days before "
                "the renewal date."
            ),
        ),
        (
            "Is there a student discount on the Plus membership?",
            (
                "Students can join Plus for half price after verifying their student status. The discount lasts as "
                "long as you remain a student."
            ),
        ),
    ],
}

_FILLERS = ["please", "really", "just", "also", "actually", "hi", "thanks", "still", "now", "again"]
_SYNONYMS = {
    "parcel": "package",
    "package": "parcel",
    "shipped": "sent",
    "arrive": "get here",
    "check": "look into",
    "order": "purchase",
    "refund": "reimbursement",
    "business": "working",
    "email": "e-mail",
    "usually": "normally",
    "within": "in",
    "cannot": "can't",
    "will": "'ll",
    "help": "assist",
    "choose": "select",
    "days": "working days",
    "account": "profile",
    "recommend": "suggest",
    "free": "free of charge",
}


def _typo(word: str, rng: random.Random) -> str:
    if len(word) < 4:
        return word
    i = rng.randrange(1, len(word) - 2)
    return word[:i] + word[i + 1] + word[i] + word[i + 2 :]


def _word_edit(words: list[str], rng: random.Random) -> None:
    """One realistic edit: a synonym, a typo (two letters swapped), a filler word
    inserted, or a word deleted."""
    operation = rng.choice(["synonym", "typo", "insert", "delete"])
    i = rng.randrange(len(words))
    if operation == "synonym":
        candidates = [k for k, w in enumerate(words) if w.lower().strip(".,?!;") in _SYNONYMS]
        if candidates:
            k = rng.choice(candidates)
            core = words[k].lower().strip(".,?!;")
            words[k] = words[k].lower().replace(core, _SYNONYMS[core])
            return
        operation = "typo"
    if operation == "typo":
        words[i] = _typo(words[i], rng)
    elif operation == "insert":
        words.insert(i, rng.choice(_FILLERS))
    else:
        del words[i]


def _surface_noise(text: str, rng: random.Random) -> str:
    """Case, punctuation or whitespace changes only."""
    style = rng.choice(["lower", "capitals", "punctuation", "spacing"])
    if style == "lower":
        return text.lower()
    if style == "capitals":
        return " ".join(w.capitalize() if rng.random() < 0.2 else w for w in text.split())
    if style == "punctuation":
        return (
            text.replace(".", rng.choice(["!", "", " ."])).replace("?", rng.choice(["??", "", " ?"])).replace(",", "")
        )
    return "  ".join(text.split()) + " \n"


def _variant(text: str, edits: int, rng: random.Random) -> str:
    words = text.split()
    for _ in range(edits):
        _word_edit(words, rng)
    return _surface_noise(" ".join(words), rng)


def labelled_pairs(seed: int = 7) -> tuple[list[str], list[tuple[int, int]], list[tuple[int, int]]]:
    """Texts plus positive and negative index pairs, labelled BY CONSTRUCTION.

    Positive: a ticket and a copy of it with surface noise (case, punctuation,
    spacing) and 0, 1, 2 or "a few" word edits, where a few = one edit per 15 words
    (3 for a typical 50-word ticket). Negative: two different tickets of the same topic
    (hard: shared topic words), a noisy copy of one ticket against another ticket of
    its topic, a ticket against the same question with a different answer (hard:
    a third to half of the text shared), and random tickets of different topics.
    """
    rng = random.Random(seed)
    tickets = [(topic, q, a) for topic, group in TICKETS.items() for q, a in group]
    texts = [f"{q} {a}" for _, q, a in tickets]
    positives: list[tuple[int, int]] = []
    negatives: list[tuple[int, int]] = []
    copies: dict[int, list[int]] = {}
    for k, text in enumerate(list(texts)):
        few = max(1, len(text.split()) // 15)
        for edits in (0, 1, 2, few):
            copies.setdefault(k, []).append(len(texts))
            positives.append((k, len(texts)))
            texts.append(_variant(text, min(edits, few), rng))
    for a, (topic_a, question_a, _) in enumerate(tickets):
        for b, (topic_b, _, answer_b) in enumerate(tickets):
            if b <= a or topic_a != topic_b:
                continue
            negatives.append((a, b))
            negatives.append((rng.choice(copies[a]), b))
            if (a + b) % 3 == 0:
                negatives.append((a, len(texts)))
                texts.append(f"{question_a} {answer_b}")
    cross = [(a, b) for a in range(len(tickets)) for b in range(len(tickets)) if tickets[a][0] != tickets[b][0]]
    negatives += rng.sample(cross, 20)
    return texts, positives, negatives


def _shingles(text: str, n: int) -> set[tuple[str, ...]]:
    words = normalize_for_shingles(text)
    return {tuple(words[i : i + n]) for i in range(max(1, len(words) - n + 1))}


def exact_jaccard(a: str, b: str, n: int) -> float:
    left, right = _shingles(a, n), _shingles(b, n)
    return len(left & right) / len(left | right)


def _f1(decisions: dict[tuple[int, int], bool], truth: dict[tuple[int, int], bool]) -> tuple[float, float, float]:
    tp = sum(decisions[p] and truth[p] for p in truth)
    fp = sum(decisions[p] and not truth[p] for p in truth)
    fn = sum(truth[p] and not decisions[p] for p in truth)
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return precision, recall, 2 * precision * recall / (precision + recall)


def test_default_settings_find_labelled_near_duplicates_with_f1_above_095():
    defaults = NearDedupConfig()
    texts, positives, negatives = labelled_pairs()
    assert 200 <= len(positives) + len(negatives) <= 500
    survivors = near_duplicate_clusters(texts)  # the library defaults
    decisions = {p: survivors[p[0]] == survivors[p[1]] for p in positives + negatives}
    truth = {**{p: True for p in positives}, **{p: False for p in negatives}}
    precision, recall, f1 = _f1(decisions, truth)
    # the same decisions against exact Jaccard of the shingle sets vs the threshold
    # (what MinHash estimates): how much the estimate and LSH lose
    exact = {p: exact_jaccard(texts[p[0]], texts[p[1]], defaults.ngram) >= defaults.threshold for p in truth}
    e_precision, e_recall, e_f1 = _f1(decisions, exact)
    print(
        f"\nnear_dedup defaults (ngram={defaults.ngram}, threshold={defaults.threshold}, num_perm={defaults.num_perm}) "
        f"on {len(positives)} positive / {len(negatives)} negative pairs\n"
        f"  vs construction labels: precision={precision:.3f} recall={recall:.3f} F1={f1:.3f}\n"
        f"  vs exact-Jaccard labels: precision={e_precision:.3f} recall={e_recall:.3f} F1={e_f1:.3f} "
        f"(construction and exact Jaccard disagree on {sum(exact[p] != truth[p] for p in truth)} pairs)"
    )
    assert f1 >= 0.95
    assert e_f1 >= 0.95
    # the set is not trivially easy: positives reach down towards the threshold and some
    # negatives share a good part of their shingles
    positive_similarity = [exact_jaccard(texts[a], texts[b], defaults.ngram) for a, b in positives]
    negative_similarity = [exact_jaccard(texts[a], texts[b], defaults.ngram) for a, b in negatives]
    assert min(positive_similarity) < defaults.threshold + 0.1
    assert max(negative_similarity) > 0.25


def test_minhash_estimate_tracks_exact_jaccard_across_the_range():
    rng = random.Random(3)
    tickets = [f"{q} {a}" for group in TICKETS.values() for q, a in group]
    pairs = []
    for text in tickets:
        for edits in (1, 3, 6, 10, 16):  # from near copies down to loosely related texts
            pairs.append((text, _variant(text, edits, rng)))
    signatures = minhash_signatures([t for pair in pairs for t in pair], num_perm=256, ngram=2)
    errors = []
    for k, (a, b) in enumerate(pairs):
        estimate = float((signatures[2 * k] == signatures[2 * k + 1]).mean())
        exact = exact_jaccard(a, b, 2)
        sigma = max((exact * (1 - exact) / 256) ** 0.5, 0.01)
        errors.append((abs(estimate - exact), sigma))
    mean_error = sum(e for e, _ in errors) / len(errors)
    print(f"\nMinHash (256 functions) |estimate - exact Jaccard| over {len(errors)} pairs: mean {mean_error:.4f}")
    assert mean_error < 0.025
    assert all(e <= 4.5 * s for e, s in errors)


def test_signatures_ignore_case_punctuation_and_spacing_but_not_words():
    texts = [
        "Where is my order? It hasn't arrived, and it's been 10 days.",
        "where is my order  it hasnt arrived and its been 10 days!!",
        "Where is my refund? It hasn't arrived, and it's been 10 days.",
    ]
    signatures = minhash_signatures(texts)
    assert signatures.shape == (3, 128) and signatures.dtype == np.uint32
    assert (signatures[0] == signatures[1]).all()
    assert 0.3 < (signatures[0] == signatures[2]).mean() < 0.9
    # the same inputs give the same signatures in another call; another seed gives others
    assert (minhash_signatures(texts[:1]) == signatures[:1]).all()
    assert (minhash_signatures(texts[:1], seed=2) != signatures[:1]).mean() > 0.9


def test_character_shingles_tolerate_typos_better_than_word_shingles():
    a = "The zipper on my tent broke after one trip, is that covered by the warranty?"
    b = "The ziper on my tnet broke after one trip, is that coverd by the waranty?"
    by_word = minhash_signatures([a, b], ngram=2, num_perm=256)
    by_char = minhash_signatures([a, b], unit="char", ngram=5, num_perm=256)
    word_similarity = (by_word[0] == by_word[1]).mean()
    char_similarity = (by_char[0] == by_char[1]).mean()
    assert char_similarity > word_similarity + 0.1
    assert near_duplicate_clusters([a, b], unit="char", ngram=5, threshold=0.5) == [0, 0]


def test_empty_and_short_texts():
    texts = [None, "", "  ...  ", "Thanks!", "thanks", "thanks a lot", None]
    signatures = minhash_signatures(texts, ngram=3)
    assert (signatures[[0, 1, 2, 6]] == EMPTY_SLOT).all()
    # a text shorter than one shingle is one shingle, the whole text
    assert (signatures[3] == signatures[4]).all()
    assert (signatures[3] != EMPTY_SLOT).all()
    assert (signatures[4] == signatures[5]).mean() < 0.2
    # empty texts are never clustered, not even with each other
    assert near_duplicate_clusters(texts, ngram=3) == [0, 1, 2, 3, 3, 5, 6]
    assert minhash_signatures([]).shape == (0, 128)
    assert near_duplicate_clusters([]) == []
    assert cross_duplicates([None, ""], ["", None]) == []


def test_bad_arguments_name_the_parameter():
    with pytest.raises(ValueError, match=r"unit must be one of \['word', 'char'\]"):
        minhash_signatures(["a"], unit="token")
    with pytest.raises(ValueError, match="num_perm must be an integer from 16 to 1024"):
        minhash_signatures(["a"], num_perm=4)
    with pytest.raises(ValueError, match="ngram must be an integer"):
        near_duplicate_clusters(["a"], ngram=0)
    with pytest.raises(ValueError, match=r"threshold must be a number in \(0, 1\]"):
        near_duplicate_clusters(["a"], threshold=1.5)
    with pytest.raises(ValueError, match="bands must be an integer from 1 to num_perm"):
        near_duplicate_clusters(["a"], bands=500)
    with pytest.raises(TypeError, match="text 1 is a int"):
        minhash_signatures(["a", 7])


def test_bands_follow_the_documented_rule():
    for threshold in (0.5, 0.7, 0.8, 0.9):
        bands, rows = lsh_bands(threshold, 128)
        assert bands * rows <= 128
        assert candidate_probability(threshold, bands, rows) >= 0.99
        # one more row per band (with the bands that still fit) would miss the target
        assert candidate_probability(threshold, 128 // (rows + 1), rows + 1) < 0.99
    assert lsh_bands(0.7, 128) == (32, 4)


def test_clusters_map_to_the_earliest_member_independent_of_order():
    texts, positives, _ = labelled_pairs(seed=11)
    survivors = near_duplicate_clusters(texts)
    for i, s in enumerate(survivors):
        assert s <= i and survivors[s] == s
    # every ticket is clustered with its noisy copies, and the ticket (earlier) survives
    assert all(survivors[b] == survivors[a] == a for a, b in positives)
    # shuffling the input gives the same partition
    order = list(range(len(texts)))
    random.Random(5).shuffle(order)
    shuffled = near_duplicate_clusters([texts[i] for i in order])

    def partition(members_of):
        groups: dict[int, set[int]] = {}
        for position, survivor in enumerate(members_of):
            groups.setdefault(survivor, set()).add(position)
        return {frozenset(g) for g in groups.values()}

    assert {frozenset(order[p] for p in g) for g in partition(shuffled)} == partition(survivors)


def test_large_block_of_identical_rows_stays_linear():
    block = ["Your order has shipped and will arrive within 3 to 5 business days."] * 20_000
    other = [f"Ticket {i}: the strap of backpack model {i} came loose after {i % 9 + 2} hikes" for i in range(2_000)]
    started = time.perf_counter()
    survivors = near_duplicate_clusters(block + other)
    seconds = time.perf_counter() - started
    assert survivors[:20_000] == [0] * 20_000
    assert seconds < 20, f"{seconds:.1f}s for 22k rows: bucket pairs are no longer linear"


def test_cross_duplicates_find_leaks_between_two_sets():
    train = [f"{q} {a}" for group in TICKETS.values() for q, a in group][:30]
    rng = random.Random(2)
    test = [
        _variant(train[4], 1, rng),  # leaked with a small edit
        "Do you sell replacement tent pegs for the Ridgeline 2? Yes, packs of ten pegs are on the accessories page.",
        _surface_noise(train[17], rng),  # leaked verbatim apart from case/punctuation
        None,
    ]
    pairs = cross_duplicates(train, test)
    assert [(i, j) for i, j, _ in pairs] == [(4, 0), (17, 2)]
    assert all(0.7 <= s <= 1.0 for _, _, s in pairs)
    assert pairs[1][2] == 1.0
    assert cross_duplicates(train, test, threshold=1.0) == [(17, 2, 1.0)]


# --- the cleaner ----------------------------------------------------------------------


def _dataset(rows):
    from datasets import Dataset

    return Dataset.from_list(rows)


def _ctx(tmp_path: Path) -> StageContext:
    return StageContext(seed=0, num_proc=1, work_dir=tmp_path)


def test_cleaner_drops_near_duplicates_and_names_the_survivor(tmp_path):
    rows = [
        {
            "id": "t:1",
            "parent_id": None,
            "prompt": "My parcel is stuck in transit for five days, is it lost?",
            "completion": (
                "Parcels sometimes stop scanning at busy sorting centres; we will open a claim if there is no update "
                "in two days."
            ),
        },
        {
            "id": "t:2",
            "parent_id": None,
            "prompt": "How do I cancel my Plus membership?",
            "completion": "Cancel any time under Account settings, Membership.",
        },
        {
            "id": "t:3",
            "parent_id": None,
            "prompt": "my parcel is stuck in transit for five days. is it lost??",
            "completion": (
                "Parcels sometimes stop scanning at busy sorting centres, we will open a claim if there is no update "
                "in two days."
            ),
        },
        {
            "id": "t:4",
            "parent_id": None,
            "prompt": "My parcel is stuck in transit for 5 days, is it lost?",
            "completion": (
                "Parcels sometimes stop scanning at busy sorting centres; we will open a claim if there is no update "
                "in two days."
            ),
        },
        {"id": "t:5", "parent_id": None, "prompt": "How do I cancel my order?", "completion": None},
    ]
    ctx = _ctx(tmp_path)
    out = NearDedup(NearDedupConfig()).apply(_dataset(rows), ctx)
    assert out["id"] == ["t:1", "t:2", "t:5"]
    assert len(ctx.drops) == 1 and ctx.drops[0].reason == "near duplicate"
    assert ctx.drops[0].ids == ["t:3", "t:4"]
    assert [d["kept"] for d in ctx.drops[0].detail] == ["t:1", "t:1"]
    assert ctx.drops[0].detail[0]["similarity"] == 1.0
    assert 0.7 <= ctx.drops[0].detail[1]["similarity"] < 1.0
    assert ctx.counters["near_duplicates"] == 2
    assert ctx.metadata["clusters"] == 1 and ctx.metadata["bands"] == 32
    assert ctx.examples and ctx.examples[0]["id"] == "t:3"


def test_cleaner_compares_only_the_configured_fields(tmp_path):
    rows = [
        {
            "id": "a",
            "parent_id": None,
            "prompt": "Is the Trailhead boot waterproof?",
            "completion": "Yes, it has a membrane.",
        },
        {
            "id": "b",
            "parent_id": None,
            "prompt": "Is the Trailhead boot waterproof?",
            "completion": "Only the GTX version is.",
        },
    ]
    ctx = _ctx(tmp_path)
    both = NearDedup(NearDedupConfig()).apply(_dataset(rows), ctx)
    assert both["id"] == ["a", "b"] and not ctx.drops
    ctx = _ctx(tmp_path)
    prompts = NearDedup(NearDedupConfig(fields=["prompt"])).apply(_dataset(rows), ctx)
    assert prompts["id"] == ["a"] and ctx.drops[0].detail == [{"kept": "a", "similarity": 1.0}]


def test_cleaner_rejects_bad_columns_with_a_fix(tmp_path):
    rows = [{"id": "a", "parent_id": None, "prompt": "hello there", "label": 3}]
    with pytest.raises(
        ValueError, match=r"column\(s\) \['completion'\] not in the data.*pipeline.params.near_dedup.fields"
    ):
        NearDedup(NearDedupConfig()).apply(_dataset(rows), _ctx(tmp_path))
    with pytest.raises(ValueError, match="column 'label' holds int values .*list only text columns"):
        NearDedup(NearDedupConfig(fields=["prompt", "label"])).apply(_dataset(rows), _ctx(tmp_path))
    for bad, message in [
        (NearDedupConfig(unit="sentence"), "near_dedup.unit must be one of"),
        (NearDedupConfig(threshold=0.0), "near_dedup.threshold must be a number in"),
        (NearDedupConfig(fields=[]), "near_dedup.fields must name at least one column"),
    ]:
        with pytest.raises(ValueError, match=message):
            NearDedup(bad)


def test_config_validation_reports_bad_parameters():
    with pytest.raises(ConfigError, match="near_dedup.num_perm must be an integer from 16 to 1024"):
        validate(["pipeline.clean=[near_dedup]", "++pipeline.params.near_dedup.num_perm=8"])


def test_pipeline_with_near_dedup_on_the_bundled_sample():
    rc = validate(["pipeline=minimal", "pipeline.clean=[drop_missing,exact_dedup,near_dedup]"])
    prepared = prepare(rc, get_plugins())
    kept = {i for split in prepared.splits.values() for i in split["id"]}
    near = [
        r
        for r in read_ledger(prepared.directory / "ledger.jsonl")
        if r.get("action") == "dropped" and r.get("reason") == "near duplicate"
    ]
    assert near, "the sample has near duplicates that exact_dedup misses (e.g. lines 6 and 374)"
    assert "support_tickets.jsonl:374" in {r["id"] for r in near}
    for record in near:
        assert record["detail"]["kept"] in kept and record["id"] not in kept
        assert record["detail"]["similarity"] >= 0.7
    assert prepared.summary["metadata"]["near_dedup"]["bands"] == 32


def test_signatures_do_not_depend_on_batching_and_long_texts_work():
    rng = random.Random(4)
    texts = [f"ticket {i}: order NW-{rng.randrange(10**6)} for the Kestrel {i % 7} arrived late" for i in range(9_000)]
    whole = minhash_signatures(texts)
    parts = np.vstack([minhash_signatures(texts[:4_000]), minhash_signatures(texts[4_000:])])
    assert (whole == parts).all()
    # a text far longer than one block of shingles (memory stays bounded, result exact)
    long_text = " ".join(f"w{rng.randrange(50_000)}" for _ in range(120_000))
    signatures = minhash_signatures([long_text, long_text + " and one more line", "short text"])
    assert (signatures[0] == signatures[1]).mean() > 0.95
    assert (signatures[0] == signatures[2]).mean() < 0.05
