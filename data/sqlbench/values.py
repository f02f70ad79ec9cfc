"""Value generation: word pools and the makers that fill a generated database's rows.

Two kinds of value:
  labels      a row's human name (person, title, company ...): `distinct(pool, rng, n)` draws n
              distinct ones from a fixed pool of combinations, so the draw depends only on the seed;
  attributes  a Draw, `draw(rng) -> one value`, with the distributions real tables have: skewed categories
              (group sizes differ, so "the most common" has an answer, and ties exist), numbers on a
              grid (ties again), money with cents, ISO dates, free text, e-mail addresses, flags.
NULLs are decided by the caller (a per-attribute rate), not here. No value contains a quote
character, so every value can be written as a plain single-quoted SQL literal."""

from __future__ import annotations

import datetime
import itertools
import random
from typing import Callable

Draw = Callable[[random.Random], object]

FIRST_NAMES = """Ada Alan Alice Amara Ana Andre Anna Arjun Ben Bruno Carla Carlos Chen Clara Daniel
David Diego Elena Emil Emma Eva Felix Fatima Grace Hana Hugo Ian Ines Ivan Jack James Jana Jonas
Julia Kai Karen Kenji Lara Leo Lina Lucas Luis Maria Marco Maya Mei Mila Nadia Nina Noah Olga Omar
Oscar Paul Priya Rafael Rosa Ruth Sara Sofia Tariq Theo Tom Vera Victor Yara Yusuf Zoe Aiden Bianca
Caleb Dmitri Erin Farah Gabriel Helga Isaac Jorge Keira Liam Minh Nora Pablo Quentin Rita Samir
Tessa Umar Valentina Wendy Xavier Yuki Zain""".split()

LAST_NAMES = """Abbott Adams Alvarez Bauer Becker Bennett Brooks Castro Chen Clarke Cohen Costa Cruz
Dalton Diaz Dubois Ellis Evans Fischer Fleming Garcia Gray Hansen Harper Hayes Ito Jensen Khan Kim
Klein Kowalski Larsen Lopez Marsh Martin Meyer Moreau Morris Nakamura Novak Olsen Ortiz Park Patel
Perez Quinn Reed Reyes Rossi Santos Sato Schmidt Silva Singh Stone Sullivan Tanaka Torres Vargas
Wagner Walsh Weber Wong Young Zhang Andersen Barros Carter Demir Eriksen Ferreira Gallo Horvat Ibrahim
Jovanovic Keller Lindqvist Mendes Nguyen Okafor Petrov Romero Suzuki Turner Varga Watts Yilmaz""".split()

CITIES = """Amsterdam Athens Austin Barcelona Berlin Boston Cairo Chicago Denver Dublin Geneva Hamburg
Helsinki Lisbon London Lyon Madrid Melbourne Milan Montreal Munich Nairobi Oslo Paris Prague Rome
Seattle Seoul Stockholm Sydney Tokyo Toronto Vienna Warsaw Zurich Osaka Lagos Lima Manila Mumbai
Porto Quebec Riga Santiago Tallinn Valencia Vancouver""".split()

COUNTRIES = """Argentina Australia Austria Brazil Canada Chile China Egypt Finland France Germany
Ghana India Ireland Italy Japan Kenya Mexico Morocco Netherlands Norway Peru Poland Portugal Spain
Sweden Turkey Vietnam""".split() + ["New Zealand", "South Korea", "United Kingdom", "United States"]

NATIONALITIES = """American Argentine Australian Brazilian British Canadian Chinese Dutch Egyptian
French German Indian Irish Italian Japanese Kenyan Korean Mexican Polish Spanish Swedish""".split()

ADJECTIVES = """Silent Golden Hidden Broken Silver Endless Crimson Distant Frozen Burning Quiet Wild
Lost Bright Dark Hollow Secret Last Winter Summer Electric Velvet Iron Paper Glass Northern Midnight
Falling Rising Wandering Lonely Scarlet Emerald Ancient Restless Painted""".split()

NOUNS = """River Garden Mountain Harbor Shadow Empire Dream Horizon Ocean Forest Kingdom Storm Light
Road Island Mirror Signal Voyage Heart Crown Valley Lantern Orchard Tide Compass Bridge Echo Meadow
Desert Canyon Star Moon Fire Rain Letter Journey""".split()

COMPANY_WORDS = """Apex Atlas Aurora Beacon Blue Cedar Cobalt Crest Delta Eagle Evergreen Falcon
Granite Harbor Horizon Keystone Liberty Lighthouse Maple Meridian Nova Oak Orbit Pacific Phoenix
Pioneer Pinnacle Redwood Sterling Summit Sunrise Titan Vertex Vista""".split()

STREETS = """Oak Maple Cedar Elm Pine Birch Willow Chestnut Walnut Spruce Hill Lake Park River
Church Market Station Mill Bridge Garden""".split()

BRANDS = """Nova Zen Pro Eco Max Aero Luma Terra Volt Kodo Brio Flux Orro Vanta""".split()

# Free text: short descriptive phrases, so LIKE '%word%' has words to find.
TEXT_OPENERS = """Bright Spacious Compact Quiet Modern Classic Popular Friendly Reliable Cozy Busy
Elegant Simple Historic Renovated""".split()
TEXT_SUBJECTS = """place option choice spot service venue model setting design layout""".split()
TEXT_FEATURES = ["a garden view", "free parking", "a large kitchen", "good reviews", "long opening hours",
                 "a rooftop terrace", "fast delivery", "a loyal following", "easy access", "a friendly staff",
                 "a small budget", "a wide selection", "late checkout", "a sea view", "quick service"]
NOTES = ["Needs follow-up", "Paid in cash", "Requested a window seat", "Delivered late", "Customer was satisfied",
         "Call before visiting", "Priority handling", "Discount applied", "Second visit", "Left a complaint",
         "Referred by a friend", "Booked online", "Gift for a relative", "Repeat customer", "Checked by manager"]
EMAIL_DOMAINS = ["mail.com", "example.org", "inbox.net", "post.io"]


# ----------------------------------------------------------------------------- labels: n distinct

def distinct(pool: list, rng: random.Random, n: int) -> list:
    """n distinct values from a fixed pool, in an order shuffled by the seed."""
    if n > len(pool):
        raise ValueError(f"pool of {len(pool)} values cannot give {n} distinct ones")
    return rng.sample(pool, n)


def combos(*parts: list, sep: str = " ") -> list[str]:
    """Every join of one word from each part, e.g. combos(ADJECTIVES, NOUNS)."""
    return [sep.join(words) for words in itertools.product(*parts)]


def person_names() -> list[str]:
    return combos(FIRST_NAMES, LAST_NAMES)


def titles() -> list[str]:
    """Book, film or song titles: 'The Silent River', 'Golden Harbor'."""
    return sorted(f"{p}{a} {n}" for p in ("", "The ") for a in ADJECTIVES for n in NOUNS)


def company_names(*suffixes: str) -> list[str]:
    """'Apex Airways', 'Cobalt Press' ..."""
    return combos(COMPANY_WORDS, list(suffixes or ("Group", "Inc", "Partners")))


def place_names(*suffixes: str) -> list[str]:
    """Named after a person or a word: 'Hansen Arena', 'Falcon Stadium'."""
    return combos(sorted(set(LAST_NAMES + COMPANY_WORDS)), list(suffixes or ("Center",)))


def product_names(*nouns: str) -> list[str]:
    """'Nova Kettle', 'Zen Lamp' ..."""
    return combos(BRANDS, list(nouns or ("One", "Plus", "Lite", "Max", "Mini", "Air")))


def codes(*prefixes: str) -> list[str]:
    """Flight numbers, room and course codes: 'AZ482'."""
    return combos(list(prefixes or ("A", "B", "C", "D")), [str(n) for n in range(100, 1000)], sep="")


# ----------------------------------------------------------------------------- attributes: one value

def weighted(pool: list, skew: float = 0.7) -> Draw:
    """One value per call; earlier pool entries are more frequent (weight 1/(i+1)^skew), so groups
    have different sizes and 'which X has the most ...' has a clear answer."""
    weights = [1.0 / (i + 1) ** skew for i in range(len(pool))]
    return lambda rng: rng.choices(pool, weights)[0]


def integer(low: int, high: int, step: int = 1) -> Draw:
    """Uniform on a grid: a coarse step (capacity 500, 1000 ...) gives ties, as real data has."""
    return lambda rng: rng.randrange(low, high + 1, step)


def money(low: float, high: float) -> Draw:
    """Amounts with cents; a third end in .99 or .00, as prices do."""
    def draw(rng: random.Random) -> float:
        cents = rng.randrange(int(low * 100), int(high * 100) + 1)
        ending = rng.random()
        if ending < 0.15:
            cents = cents // 100 * 100 + 99
        elif ending < 0.35:
            cents = cents // 100 * 100
        return cents / 100
    return draw


def decimal(low: float, high: float, digits: int = 1) -> Draw:
    return lambda rng: round(rng.uniform(low, high), digits)


def year(low: int, high: int) -> Draw:
    return lambda rng: rng.randint(low, high)


def date(low: int, high: int) -> Draw:
    """An ISO date 'YYYY-MM-DD' in the years low..high (SQLite compares them as text, correctly)."""
    start = datetime.date(low, 1, 1).toordinal()
    end = datetime.date(high, 12, 31).toordinal()
    return lambda rng: datetime.date.fromordinal(rng.randint(start, end)).isoformat()


def flag() -> Draw:
    """0 or 1, a third of the rows 0."""
    return lambda rng: int(rng.random() >= 1 / 3)


def description() -> Draw:
    """'Quiet venue with a garden view'."""
    return lambda rng: f"{rng.choice(TEXT_OPENERS)} {rng.choice(TEXT_SUBJECTS)} with {rng.choice(TEXT_FEATURES)}"


def note() -> Draw:
    return lambda rng: rng.choice(NOTES)


def email() -> Draw:
    def draw(rng: random.Random) -> str:
        first, last = rng.choice(FIRST_NAMES).lower(), rng.choice(LAST_NAMES).lower()
        return f"{first}.{last}{rng.randint(1, 99)}@{rng.choice(EMAIL_DOMAINS)}"
    return draw


def phone() -> Draw:
    return lambda rng: f"+1-555-{rng.randint(100, 999)}-{rng.randint(1000, 9999)}"


def street_address() -> Draw:
    return lambda rng: f"{rng.randint(1, 250)} {rng.choice(STREETS)} {rng.choice(['Street', 'Avenue', 'Road'])}"


def website() -> Draw:
    return lambda rng: f"www.{rng.choice(COMPANY_WORDS).lower()}{rng.choice(NOUNS).lower()}.com"
