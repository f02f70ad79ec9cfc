"""Word pools and value makers for the generated databases: people, places, titles, companies.

Every maker is `make(rng, n) -> list[str]` of n *distinct* values, drawn from a sorted pool of
combinations so that the draw depends only on the seed. No value contains a quote character, so
every value can be written as a plain single-quoted SQL literal."""

from __future__ import annotations

import itertools
import random
from typing import Callable

Maker = Callable[[random.Random, int], list]

FIRST_NAMES = """Ada Alan Alice Amara Ana Andre Anna Arjun Ben Bruno Carla Carlos Chen Clara Daniel
David Diego Elena Emil Emma Eva Felix Fatima Grace Hana Hugo Ian Ines Ivan Jack James Jana Jonas
Julia Kai Karen Kenji Lara Leo Lina Lucas Luis Maria Marco Maya Mei Mila Nadia Nina Noah Olga Omar
Oscar Paul Priya Rafael Rosa Ruth Sara Sofia Tariq Theo Tom Vera Victor Yara Yusuf Zoe""".split()

LAST_NAMES = """Abbott Adams Alvarez Bauer Becker Bennett Brooks Castro Chen Clarke Cohen Costa Cruz
Dalton Diaz Dubois Ellis Evans Fischer Fleming Garcia Gray Hansen Harper Hayes Ito Jensen Khan Kim
Klein Kowalski Larsen Lopez Marsh Martin Meyer Moreau Morris Nakamura Novak Olsen Ortiz Park Patel
Perez Quinn Reed Reyes Rossi Santos Sato Schmidt Silva Singh Stone Sullivan Tanaka Torres Vargas
Wagner Walsh Weber Wong Young Zhang""".split()

CITIES = """Amsterdam Athens Austin Barcelona Berlin Boston Cairo Chicago Denver Dublin Geneva Hamburg
Helsinki Lisbon London Lyon Madrid Melbourne Milan Montreal Munich Nairobi Oslo Paris Prague Rome
Seattle Seoul Stockholm Sydney Tokyo Toronto Vienna Warsaw Zurich""".split()

COUNTRIES = """Australia Brazil Canada China Egypt France Germany India Italy Japan Kenya Mexico
Netherlands Norway Poland Spain Sweden""".split() + ["South Korea", "United Kingdom", "United States"]

NATIONALITIES = """American Australian Brazilian British Canadian Chinese Dutch French German Indian
Irish Italian Japanese Korean Mexican Polish Spanish Swedish""".split()

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

SUBJECTS = """Physics Chemistry Biology Mathematics History Economics Philosophy Linguistics
Psychology Sociology Geology Astronomy Literature Music Architecture Statistics""".split()
SUBJECTS += ["Computer Science", "Political Science", "Fine Arts"]


def distinct_from(pool: list) -> Maker:
    """n distinct values from a fixed pool (in pool order shuffled by the seed)."""
    def make(rng: random.Random, n: int) -> list:
        if n > len(pool):
            raise ValueError(f"pool of {len(pool)} values cannot give {n} distinct ones")
        return rng.sample(pool, n)
    return make


def combos(*parts: list, sep: str = " ") -> Maker:
    """n distinct joins of one word from each part, e.g. combos(ADJECTIVES, NOUNS)."""
    pool = [sep.join(words) for words in itertools.product(*parts)]
    return distinct_from(pool)


def person_names() -> Maker:
    return combos(FIRST_NAMES, LAST_NAMES)


def titles(prefixes: tuple[str, ...] = ("", "The ")) -> Maker:
    """Book, film or artwork titles: 'The Silent River', 'Golden Harbor'."""
    pool = [f"{p}{a} {n}" for p in prefixes for a in ADJECTIVES for n in NOUNS]
    return distinct_from(sorted(pool))


def company_names(*suffixes: str) -> Maker:
    """'Apex Airways', 'Cobalt Press' ..."""
    return combos(COMPANY_WORDS, list(suffixes))


def venue_names(*suffixes: str) -> Maker:
    """Named after a person or a word: 'Hansen Arena', 'Falcon Stadium'."""
    return combos(sorted(set(LAST_NAMES + COMPANY_WORDS)), list(suffixes))


def street_addresses() -> Maker:
    numbers = [str(n) for n in range(1, 200, 3)]
    return combos(numbers, [f"{s} Street" for s in STREETS] + [f"{s} Avenue" for s in STREETS])


def codes(letters: list[str], low: int, high: int) -> Maker:
    """Flight numbers and the like: 'AZ482'."""
    return combos(letters, [str(n) for n in range(low, high)], sep="")


def weighted(pool: list, skew: float = 0.7) -> Callable[[random.Random], object]:
    """One value per call; earlier pool entries are more frequent (weight 1/(i+1)^skew), so that
    groups have different sizes and 'which X has the most ...' has a clear answer."""
    weights = [1.0 / (i + 1) ** skew for i in range(len(pool))]
    return lambda rng: rng.choices(pool, weights)[0]
