"""A deterministic synthetic organization: employees, external contacts and group chats."""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass

import phonenumbers

# (country calling code, region, national prefix, national number length, weight)
_COUNTRIES = (
    ("972", "IL", "5", 9, 40),
    ("44", "GB", "7", 10, 20),
    ("1", "US", "", 10, 20),
    ("49", "DE", "1", 11, 10),
    ("33", "FR", "6", 9, 10),
)
_MOBILE_TYPES = (phonenumbers.PhoneNumberType.MOBILE,
                 phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)

# Name pools by script. Non-Latin names carry an ASCII transliteration for email addresses.
_LATIN = (
    ("Dana", "Avi", "Noa", "Yossi", "Michal", "Omer", "Tamar", "Eitan", "Sarah", "James",
     "Emily", "Michael", "Olivia", "David", "Rachel", "Daniel", "Hannah", "Oliver", "Grace",
     "Thomas", "Lucy", "Ethan", "Chloe", "Nathan", "Maya", "Sean"),
    ("Levi", "Cohen", "Mizrahi", "Peretz", "Friedman", "Smith", "Johnson", "Brown", "Taylor",
     "Wilson", "Clarke", "Walker", "Harris", "Goldberg", "Katz", "Shapiro", "Ben-David",
     "O'Brien", "Miller", "Rosen"),
)
_ACCENTED = (
    ("Zoë", "José", "François", "Jürgen", "Søren", "Chloé", "Łukasz", "Renée", "Björn", "Inês"),
    ("Müller", "García", "Dubois", "Schäfer", "Østergaard", "Lefèvre", "Wójcik", "Côté",
     "Åström", "Gonçalves"),
)
_HEBREW = (
    (("דנה", "dana"), ("יוסי", "yossi"), ("נועה", "noa"), ("אבי", "avi"), ("מיכל", "michal"),
     ("עומר", "omer"), ("תמר", "tamar"), ("איתן", "eitan")),
    (("לוי", "levi"), ("כהן", "cohen"), ("מזרחי", "mizrahi"), ("פרץ", "peretz"),
     ("ביטון", "biton"), ("אברהם", "avraham")),
)
_ARABIC = (
    (("ليلى", "layla"), ("أحمد", "ahmad"), ("مريم", "maryam"), ("خالد", "khaled"),
     ("نور", "nour"), ("سامي", "sami")),
    (("حداد", "haddad"), ("خوري", "khoury"), ("نصار", "nassar"), ("عودة", "odeh"),
     ("سليمان", "suleiman")),
)
_CYRILLIC = (
    (("Иван", "ivan"), ("Ольга", "olga"), ("Дмитрий", "dmitry"), ("Анна", "anna")),
    (("Петров", "petrov"), ("Смирнова", "smirnova"), ("Волков", "volkov")),
)
_SCRIPT_WEIGHTS = (("latin", 50), ("accented", 15), ("hebrew", 20), ("arabic", 10),
                   ("cyrillic", 5))
_OUTSIDE_DOMAINS = ("gmail.com", "outlook.com", "yahoo.com", "proton.me", "icloud.com",
                    "fabrikam.com", "northwindtraders.com")
_GROUP_NAMES = (
    "Trading Desk EMEA", "FX Options 🌍", "Rates Desk NY", "צוות מכירות", "Compliance Watch",
    "Ops ⚙️ Settlement", "Credit Sales 📈", "Tel Aviv Office 🇮🇱", "London Brokers",
    "Equities Asia", "Board Prep 🔒", "הנהלה", "Deal Team Orion", "Client: Fabrikam ✉️",
    "Friday Lunch 🍕", "Research Notes", "Commodities Desk", "Paris Équipe Ventes",
    "Berlin Büro", "Risk & Limits", "فريق الخليج",
)


@dataclass(frozen=True)
class Person:
    """A Telegram user: mobile is digits with country code and no plus sign."""

    first: str
    last: str
    mobile: str
    email: str | None

    @property
    def name(self) -> str:
        return f"{self.first} {self.last}"

    @property
    def display(self) -> str:
        """The display part of TeleMessage's participant format, `First Last Mobile`."""
        return f"{self.first} {self.last} {self.mobile}"


@dataclass(frozen=True)
class Group:
    """A Telegram group chat."""

    group_id: str
    name: str
    members: tuple[Person, ...]


@dataclass(frozen=True)
class Org:
    """Employees (with mailboxes in `domain`), external contacts and their group chats."""

    domain: str
    employees: tuple[Person, ...]
    externals: tuple[Person, ...]
    groups: tuple[Group, ...]

    def employee_directory(self) -> list[dict[str, str]]:
        """Users for the Graph simulator: display name, mail and mobile (digits, no plus)."""
        return [{"display_name": p.name, "mail": p.email or "", "mobile": p.mobile}
                for p in self.employees]


def _ascii(text: str) -> str:
    """Lower-case ASCII letters and hyphens of a Latin name ("Müller" -> "muller")."""
    folded = unicodedata.normalize("NFKD", text.replace("Ł", "L").replace("ł", "l"))
    return "".join(c for c in folded.lower() if c.isascii() and (c.isalnum() or c == "-"))


def _name(rng: random.Random) -> tuple[str, str, str, str]:
    """(first, last, ascii first, ascii last) in a script drawn by weight."""
    script = rng.choices([s for s, _ in _SCRIPT_WEIGHTS], [w for _, w in _SCRIPT_WEIGHTS])[0]
    if script in ("latin", "accented"):
        firsts, lasts = _LATIN if script == "latin" else _ACCENTED
        first, last = rng.choice(firsts), rng.choice(lasts)
        return first, last, _ascii(first), _ascii(last)
    firsts_t, lasts_t = {"hebrew": _HEBREW, "arabic": _ARABIC, "cyrillic": _CYRILLIC}[script]
    (first, first_a), (last, last_a) = rng.choice(firsts_t), rng.choice(lasts_t)
    return first, last, first_a, last_a


def _mobile(rng: random.Random, used: set[str]) -> str:
    """A mobile number valid per libphonenumber in a country drawn by weight, not in `used`."""
    code, region, prefix, length, _ = rng.choices(_COUNTRIES, [c[4] for c in _COUNTRIES])[0]
    while True:
        national = prefix + "".join(rng.choice("0123456789") for _ in range(length - len(prefix)))
        parsed = phonenumbers.parse(f"+{code}{national}")
        if (code + national not in used and phonenumbers.is_valid_number(parsed)
                and phonenumbers.region_code_for_number(parsed) == region
                and phonenumbers.number_type(parsed) in _MOBILE_TYPES):
            used.add(code + national)
            return code + national


def _unique_local(base: str, domain: str, used: set[str]) -> str:
    address, n = f"{base}@{domain}", 1
    while address in used:
        n += 1
        address = f"{base}{n}@{domain}"
    used.add(address)
    return address


def generate_org(seed: int, employees: int = 60, externals: int = 40,
                 domain: str = "contoso.com") -> Org:
    """Build the same organization for the same arguments (nothing depends on time)."""
    rng = random.Random(seed)
    mobiles: set[str] = set()
    emails: set[str] = set()
    staff = []
    for _ in range(employees):
        first, last, first_a, last_a = _name(rng)
        email = _unique_local(f"{first_a}.{last_a}", domain, emails)
        staff.append(Person(first, last, _mobile(rng, mobiles), email))
    outside = []
    for _ in range(externals):
        first, last, first_a, last_a = _name(rng)
        outside_email = (_unique_local(f"{first_a}.{last_a}", rng.choice(_OUTSIDE_DOMAINS),
                                       emails) if rng.random() < 0.3 else None)
        outside.append(Person(first, last, _mobile(rng, mobiles), outside_email))
    return Org(domain, tuple(staff), tuple(outside), _groups(rng, staff, outside))


def _groups(rng: random.Random, staff: list[Person], outside: list[Person]) -> tuple[Group, ...]:
    """Group chats of 3-8 members, each with at least two employees."""
    if len(staff) < 2:
        return ()
    count = max(3, (len(staff) + len(outside)) // 8)
    ids: set[str] = set()
    groups = []
    for i in range(count):
        name = _GROUP_NAMES[i % len(_GROUP_NAMES)]
        if i >= len(_GROUP_NAMES):
            name = f"{name} {i // len(_GROUP_NAMES) + 1}"
        size = rng.randint(3, 8)
        n_outside = rng.randint(0, min(len(outside), size - 2))
        members = rng.sample(staff, min(len(staff), size - n_outside)) + rng.sample(outside,
                                                                                  n_outside)
        group_id = ""
        while not group_id or group_id in ids:
            group_id = f"-100{rng.randrange(10**9, 10**10)}"
        ids.add(group_id)
        groups.append(Group(group_id, name, tuple(members)))
    return tuple(groups)
