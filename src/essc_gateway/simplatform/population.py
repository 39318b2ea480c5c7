"""A deterministic synthetic population: the simulated platform's register of persons.

Everything is drawn from one `random.Random(seed)`, so the same seed always gives the same
people (tests, the README and the CLI rely on that). Nobody here is real.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from essc_gateway.domain.citizen_id import check_character, mask_id

CivilCapacityName = Literal["FULL", "LIMITED", "NONE"]
PersonalStatusName = Literal["EMPLOYED", "UNEMPLOYED", "RETIRED"]
InsuranceTypeName = Literal["PENSION", "MEDICAL", "UNEMPLOYMENT", "WORK_INJURY", "MATERNITY"]

DEFAULT_SEED = 20240320
DEFAULT_SIZE = 2000
# Ages, statuses and contribution periods are computed on this day, not on the system date:
# a population must not change with the day it is generated.
POPULATION_AS_OF = date(2026, 11, 1)
BIOMETRIC_TEMPLATE_BYTES = 32
# A live capture of the same person differs in a few bits; a stranger's in about half (128).
BIOMETRIC_MATCH_MAX_DISTANCE = 24

_EARLIEST_BIRTH = date(1935, 1, 1)
_LATEST_BIRTH = date(2024, 12, 31)
_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹"
    "彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金"
)
_GIVEN = (
    "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超霞平刚桂华建国文辉玲红鹏宇"
    "浩欣怡梓涵子轩雨萱博思佳晨嘉一诺泽瑞琳婷雪燕海林峰斌鑫慧颖亮志"
)
# Real district codes (GB/T 2260) spread over provinces; first two digits are the province.
_AREA_CODES = (
    "110101", "110102", "110105", "110108", "120101", "120103", "130102", "140105",
    "210102", "220102", "230102", "310101", "310104", "310106", "310115", "320102",
    "320506", "330102", "330106", "330203", "340104", "350102", "350203", "360102",
    "370102", "370202", "410105", "420102", "420106", "430102", "440103", "440106",
    "440304", "440305", "450103", "460105", "500103", "510104", "510107", "520102",
    "530102", "610103", "610113", "620102", "640104", "650102",
)  # fmt: skip
# Mobile prefixes for which every 8-digit suffix is a valid CN mobile for `phonenumbers`.
_MOBILE_PREFIXES = (
    "130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152",
    "153", "155", "156", "157", "158", "159", "166", "173", "175", "176", "177", "178",
    "180", "181", "182", "183", "184", "185", "186", "187", "188", "189", "198", "199",
)  # fmt: skip
_CARD_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"  # no I or O: they read as 1 and 0
_TITLES = (
    "电工", "焊工", "育婴员", "保育师", "中式烹调师", "美容师", "汽车维修工",
    "计算机程序设计员", "电子商务师", "养老护理员", "企业人力资源管理师", "健康管理师",
)  # fmt: skip
_LEVELS = ("五级/初级工", "四级/中级工", "三级/高级工", "二级/技师", "一级/高级技师")
# (employer, personal) rates per insurance type, as a fraction of the contribution base.
_RATES: dict[InsuranceTypeName, tuple[float, float]] = {
    "PENSION": (0.16, 0.08),
    "MEDICAL": (0.08, 0.02),
    "UNEMPLOYMENT": (0.005, 0.005),
    "WORK_INJURY": (0.004, 0.0),
    "MATERNITY": (0.008, 0.0),
}


@dataclass(frozen=True, slots=True)
class Contribution:
    """One month's contribution to one insurance; amounts in fen (0.01 CNY)."""

    insurance_type: InsuranceTypeName
    period: str  # YYYY-MM
    base_fen: int
    employer_fen: int
    personal_fen: int


@dataclass(frozen=True, slots=True)
class Qualification:
    """An occupational qualification or skill certificate [K]."""

    title: str
    level: str
    certificate_number: str
    issued_on: str  # YYYY-MM-DD

    def __repr__(self) -> str:
        return f"Qualification(title={self.title!r}, level={self.level!r})"


@dataclass(frozen=True, slots=True)
class Person:
    """One person of the register. `repr` shows no name, ID, phone, card or biometrics."""

    name: str
    id_number: str
    mobile_phone: str  # E.164
    card_number: str  # the physical card issued at generation; replacements live in the state
    biometric_template: bytes
    civil_capacity: CivilCapacityName
    personal_status: PersonalStatusName
    contributions: tuple[Contribution, ...]
    pension_balance_fen: int
    medical_balance_fen: int
    qualifications: tuple[Qualification, ...]

    def __repr__(self) -> str:
        return (
            f"Person(id={mask_id(self.id_number)}, capacity={self.civil_capacity}, "
            f"status={self.personal_status})"
        )

    __str__ = __repr__

    @property
    def birth_date(self) -> date:
        """Digits 7-14 of the ID number."""
        digits = self.id_number[6:14]
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))

    @property
    def is_male(self) -> bool:
        """Digit 17 odd = male."""
        return int(self.id_number[16]) % 2 == 1

    def age_on(self, day: date) -> int:
        """Completed years of age on `day`."""
        born = self.birth_date
        return day.year - born.year - (0 if (day.month, day.day) >= (born.month, born.day) else 1)


class Population:
    """The register: people in generation order, with lookups by ID and by phone."""

    def __init__(
        self, people: Iterable[Person], *, seed: int | None = None, as_of: date = POPULATION_AS_OF
    ) -> None:
        self.people: tuple[Person, ...] = tuple(people)
        self.seed = seed
        self.as_of = as_of
        self._by_id = {person.id_number: person for person in self.people}
        self._by_phone = {person.mobile_phone: person for person in self.people}
        if len(self._by_id) != len(self.people) or len(self._by_phone) != len(self.people):
            raise ValueError("ID numbers and mobile phones must be unique in a population")

    def __len__(self) -> int:
        return len(self.people)

    def __repr__(self) -> str:
        return f"Population(size={len(self.people)}, seed={self.seed})"

    def by_id(self, id_number: str) -> Person | None:
        return self._by_id.get(id_number)

    def by_phone(self, e164: str) -> Person | None:
        return self._by_phone.get(e164)

    def find(self, predicate: Callable[[Person], bool]) -> Person:
        """The first person (in generation order) for whom `predicate` holds.

        Raises:
            LookupError: nobody matches.
        """
        for person in self.people:
            if predicate(person):
                return person
        raise LookupError("no person in the population matches")

    def samples(self, today: date, count: int = 3) -> list[Person]:
        """Working-age, employed adults with full capacity: identities for a newcomer to try."""
        chosen = [
            person
            for person in self.people
            if 18 <= person.age_on(today) < 60
            and person.civil_capacity == "FULL"
            and person.personal_status == "EMPLOYED"
        ]
        return chosen[:count]


def initial_password(id_number: str) -> str:
    """The platform's initial query password: the ID's last 8 characters, X -> 1 (K1).

    The simulator's own rule, deliberately not the gateway's (`domain.passwords`): an error
    there must show up against the platform, not be copied into it. Register IDs are
    canonical (upper-case X).

    Raises:
        ValueError: `id_number` is not 18 characters long.
    """
    if len(id_number) != 18:
        raise ValueError("an ID number has 18 characters")
    last8 = id_number[10:]
    return last8[:7] + ("1" if last8[7] == "X" else last8[7])


def biometric_matches(template: bytes, sample: bytes) -> bool:
    """Same length and at most `BIOMETRIC_MATCH_MAX_DISTANCE` differing bits."""
    if not template or len(sample) != len(template):
        return False
    distance = (int.from_bytes(template, "big") ^ int.from_bytes(sample, "big")).bit_count()
    return distance <= BIOMETRIC_MATCH_MAX_DISTANCE


def biometric_sample(person: Person, rng: random.Random, flipped_bits: int = 6) -> bytes:
    """A "live capture" of `person`: the enrolled template with `flipped_bits` bits flipped."""
    size = len(person.biometric_template) * 8
    if not 0 <= flipped_bits <= size:
        raise ValueError(f"flipped_bits must be between 0 and {size}")
    value = int.from_bytes(person.biometric_template, "big")
    for bit in rng.sample(range(size), flipped_bits):
        value ^= 1 << bit
    return value.to_bytes(len(person.biometric_template), "big")


def generate_population(
    seed: int = DEFAULT_SEED, size: int = DEFAULT_SIZE, *, as_of: date = POPULATION_AS_OF
) -> Population:
    """`size` synthetic people, identical for an identical seed (and `as_of`)."""
    if size < 0:
        raise ValueError("size must not be negative")
    people = list(itertools.islice(iter_people(seed, as_of=as_of), size))
    return Population(people, seed=seed, as_of=as_of)


def iter_people(seed: int = DEFAULT_SEED, *, as_of: date = POPULATION_AS_OF) -> Iterator[Person]:
    """The endless sequence of which every population of `seed` is a prefix: the first `n`
    people are the same whatever size is asked for later."""
    rng = random.Random(seed)  # noqa: S311 - reproducible synthetic data, not a secret
    ids: set[str] = set()
    phones: set[str] = set()
    cards: set[str] = set()
    while True:
        yield _person(rng, as_of, ids, phones, cards)


def new_card_number(rng: random.Random, taken: set[str]) -> str:
    """A physical card number (letter + 8 digits) not in `taken`; adds it to `taken`."""
    while True:
        number = f"{rng.choice(_CARD_LETTERS)}{rng.randrange(10**8):08d}"
        if number not in taken:
            taken.add(number)
            return number


def _person(
    rng: random.Random, as_of: date, ids: set[str], phones: set[str], cards: set[str]
) -> Person:
    latest = min(_LATEST_BIRTH, as_of)
    born = _EARLIEST_BIRTH + timedelta(days=rng.randrange((latest - _EARLIEST_BIRTH).days + 1))
    id_number = _unique(ids, lambda: _id_number(rng, born))
    phone = _unique(phones, lambda: f"+86{rng.choice(_MOBILE_PREFIXES)}{rng.randrange(10**8):08d}")
    name = rng.choice(_SURNAMES) + "".join(rng.choices(_GIVEN, k=rng.choice((1, 2, 2))))
    card_number = new_card_number(rng, cards)
    template = rng.randbytes(BIOMETRIC_TEMPLATE_BYTES)
    male = int(id_number[16]) % 2 == 1
    age = as_of.year - born.year - (0 if (as_of.month, as_of.day) >= (born.month, born.day) else 1)
    capacity = _capacity(rng, age)
    status = _status(rng, age, male)
    contributions: tuple[Contribution, ...] = ()
    pension = medical = 0
    qualifications: tuple[Qualification, ...] = ()
    if age >= 18:
        base_fen = rng.randrange(4_000, 30_000) * 100  # monthly contribution base, CNY 4k-30k
        years_worked = max(0, min(age, 60) - 22)
        if status == "UNEMPLOYED":
            years_worked = rng.randrange(years_worked + 1)
        pension = int(base_fen * 0.08 * 12 * years_worked * rng.uniform(0.6, 1.1))
        medical = int(base_fen * 0.02 * 12 * rng.uniform(0.3, 3.0))
        if status != "UNEMPLOYED":
            contributions = _contributions(rng, as_of, base_fen)
            qualifications = _qualifications(rng, born, as_of, id_number[:6])
    return Person(
        name=name,
        id_number=id_number,
        mobile_phone=phone,
        card_number=card_number,
        biometric_template=template,
        civil_capacity=capacity,
        personal_status=status,
        contributions=contributions,
        pension_balance_fen=pension,
        medical_balance_fen=medical,
        qualifications=qualifications,
    )


def _unique(taken: set[str], draw: Callable[[], str]) -> str:
    while True:
        value = draw()
        if value not in taken:
            taken.add(value)
            return value


def _id_number(rng: random.Random, born: date) -> str:
    first17 = f"{rng.choice(_AREA_CODES)}{born:%Y%m%d}{rng.randrange(1, 1000):03d}"
    return first17 + check_character(first17)


def _capacity(rng: random.Random, age: int) -> CivilCapacityName:
    # Civil Code: under 8 no capacity, 8-17 limited; a few adults are without capacity.
    if age < 8:
        return "NONE"
    if age < 18:
        return "LIMITED"
    return "NONE" if rng.random() < 0.02 else "FULL"


def _status(rng: random.Random, age: int, male: bool) -> PersonalStatusName:
    if age < 18:
        return "UNEMPLOYED"
    if age >= (60 if male else 55):
        return "RETIRED"
    return "UNEMPLOYED" if rng.random() < 0.12 else "EMPLOYED"


def _contributions(rng: random.Random, as_of: date, base_fen: int) -> tuple[Contribution, ...]:
    types: list[InsuranceTypeName] = ["PENSION", "MEDICAL"]
    if rng.random() < 0.6:
        types.append("UNEMPLOYMENT")
    if rng.random() < 0.3:
        types.append("WORK_INJURY")
    if rng.random() < 0.2:
        types.append("MATERNITY")
    records = []
    for months_back in range(12, 0, -1):
        index = as_of.year * 12 + as_of.month - 1 - months_back
        period = f"{index // 12:04d}-{index % 12 + 1:02d}"
        for insurance in types:
            employer_rate, personal_rate = _RATES[insurance]
            records.append(
                Contribution(
                    insurance_type=insurance,
                    period=period,
                    base_fen=base_fen,
                    employer_fen=round(base_fen * employer_rate),
                    personal_fen=round(base_fen * personal_rate),
                )
            )
    return tuple(records)


def _qualifications(
    rng: random.Random, born: date, as_of: date, area: str
) -> tuple[Qualification, ...]:
    earliest = born.year + 20
    if earliest >= as_of.year:
        return ()
    result = []
    for _ in range(rng.choice((0, 0, 1, 1, 2))):
        year = rng.randrange(earliest, as_of.year)
        issued = date(year, rng.randrange(1, 13), rng.randrange(1, 29))
        result.append(
            Qualification(
                title=rng.choice(_TITLES),
                level=rng.choice(_LEVELS),
                certificate_number=f"{area}{year:04d}{rng.randrange(10**8):08d}",
                issued_on=issued.isoformat(),
            )
        )
    return tuple(result)
