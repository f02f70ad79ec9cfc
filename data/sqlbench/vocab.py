"""The attribute and label vocabularies that every domain's entities are composed from.

An Attribute is a reusable column meaning (age, salary, city, hire date ...): its kind (what SQL
may do with it), how its values are drawn, how often it is NULL, the column names it goes by in
the wild (`birth_date`, `date_of_birth`, `dob`) and the words a question uses for it ("birth
date", "date of birth", "birthday"), plus optional idioms ("older than {v}", "founded in {v}").
A Label is the column that names a row (a person's name, a book's title, a product code).

Kinds and what the SQL grammar may do with them:
  category  few repeated text values  = != IN, GROUP BY, count(DISTINCT)
  int money real                      > < >= <= BETWEEN, ORDER BY, avg min max (sum if additive)
  year date                           = (year) > < BETWEEN, ORDER BY, min max, LIKE 'YYYY%' (date)
  text      free text, often NULL     LIKE '%word%', IS NULL, shown
  flag      0/1                       = 1 / = 0 ("active" / "inactive")"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

from data.sqlbench import values as V

NUMERIC = ("int", "money", "real", "year", "date")
KINDS = ("category", "flag", "text") + NUMERIC


@dataclass(frozen=True)
class Attribute:
    key: str
    kind: str
    params: tuple  # category: (pool, skew); int: (low, high, step); money/real/year/date: (low, high); text: (draw,)
    phrases: tuple[str, ...]  # question wordings, the first the plainest
    names: tuple[tuple[str, ...], ...]  # column names as word tuples: ("birth", "date"), ("dob",)
    null: float = 0.0  # share of NULL values
    additive: bool = False  # sum() means something (price, quantity), not for ages or years
    eq: tuple[str, ...] = ()  # idioms for "= {v}": "founded in {v}"
    gt: tuple[str, ...] = ()  # idioms for "> {v}": "older than {v}"
    lt: tuple[str, ...] = ()  # idioms for "< {v}": "younger than {v}"
    yes: str = ""  # flag: the adjective for 1 ("active"); its negation reads "not active"

    def draw(self) -> V.Draw:
        p = self.params
        if self.kind == "category":
            return V.weighted(list(p[0]), p[1])
        if self.kind == "int":
            return V.integer(*p)
        if self.kind == "money":
            return V.money(*p)
        if self.kind == "real":
            return V.decimal(*p)
        if self.kind == "year":
            return V.year(*p)
        if self.kind == "date":
            return V.date(*p)
        if self.kind == "flag":
            return V.flag()
        return p[0]  # text: the draw itself

    def with_range(self, low: float, high: float) -> "Attribute":
        """The same attribute over another range: capacity 20-300 for a classroom, 2000-90000 for a stadium."""
        if self.kind not in NUMERIC:
            raise ValueError(f"{self.key}: a {self.kind} attribute has no range")
        cast = float if self.kind in ("money", "real") else int
        return dataclasses.replace(self, params=(cast(low), cast(high)) + tuple(self.params[2:]))


def _split(text: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in text.split("|") if s.strip())


def _names(key: str, names: str) -> tuple[tuple[str, ...], ...]:
    """`names` like "birth_date|date_of_birth|dob"; the key itself always comes first."""
    spelled = [key] + [n for n in _split(names) if n != key]
    return tuple(tuple(n.split("_")) for n in spelled)


def A(key: str, kind: str, params: tuple, phrases: str, names: str = "", **idioms) -> Attribute:
    extra = {k: _split(v) if k in ("eq", "gt", "lt") else v for k, v in idioms.items()}
    return Attribute(key, kind, params, _split(phrases), _names(key, names), **extra)


def cat(key: str, pool: str | list, phrases: str = "", skew: float = 0.7, **kw) -> Attribute:
    values = tuple(pool.split("/")) if isinstance(pool, str) else tuple(pool)
    return A(key, "category", (values, skew), phrases or key.replace("_", " "), **kw)


def num(key: str, low: int, high: int, phrases: str, step: int = 1, **kw) -> Attribute:
    return A(key, "int", (low, high, step), phrases, **kw)


def cash(key: str, low: float, high: float, phrases: str, **kw) -> Attribute:
    return A(key, "money", (float(low), float(high)), phrases, additive=kw.pop("additive", True), **kw)


def real(key: str, low: float, high: float, phrases: str, digits: int = 1, **kw) -> Attribute:
    return A(key, "real", (float(low), float(high), digits), phrases, **kw)


def yr(key: str, low: int, high: int, phrases: str, **kw) -> Attribute:
    return A(key, "year", (low, high), phrases, **kw)


def day(key: str, low: int, high: int, phrases: str, **kw) -> Attribute:
    return A(key, "date", (low, high), phrases, **kw)


def text(key: str, draw: V.Draw, phrases: str, null: float = 0.15, **kw) -> Attribute:
    return A(key, "text", (draw,), phrases, null=null, **kw)


def flag(key: str, yes: str, phrases: str, **kw) -> Attribute:
    return A(key, "flag", (), phrases, yes=yes, **kw)


LANGUAGES = "English/Spanish/French/German/Japanese/Korean/Italian/Portuguese/Chinese/Arabic"
COLORS = "Black/White/Silver/Blue/Red/Green/Grey/Yellow"

ATTRIBUTES: dict[str, Attribute] = {a.key: a for a in [
    # ---- people
    num("age", 18, 90, "age", gt="older than {v}", lt="younger than {v}"),
    cat("gender", "Female/Male", "gender|sex", skew=0.1),
    day("birth_date", 1950, 2005, "birth date|date of birth|birthday", names="date_of_birth|dob",
        gt="born after {v}", lt="born before {v}"),
    yr("birth_year", 1940, 2005, "birth year|year of birth", names="year_born",
       eq="born in {v}", gt="born after {v}", lt="born before {v}"),
    cat("nationality", V.NATIONALITIES[:12], "nationality|citizenship", skew=0.5),
    cat("country", V.COUNTRIES[:14], "country|home country", skew=0.5, eq="from {v}|based in {v}"),
    cat("city", V.CITIES[:12], "city|town|location", skew=0.5, eq="in {v}|located in {v}"),
    text("email", V.email(), "email address|email|e-mail", names="email_address|mail", null=0.1),
    text("phone", V.phone(), "phone number|telephone number|phone", names="phone_number|tel", null=0.15),
    text("address", V.street_address(), "address|street address", names="street_address|addr", null=0.05),
    day("hire_date", 2000, 2024, "hire date|date of hiring|employment start date", names="date_hired|hired_on",
        gt="hired after {v}", lt="hired before {v}"),
    cash("salary", 30000, 200000, "salary|annual salary|pay", names="annual_salary|wage",
         gt="earning more than {v}", lt="earning less than {v}"),
    cash("hourly_rate", 12, 95, "hourly rate|hourly wage|pay per hour", names="rate_per_hour|hourly_wage"),
    num("years_experience", 0, 40, "years of experience|experience in years",
        names="experience_years|yrs_experience|experience"),
    real("rating", 1, 5, "rating|score|average rating", names="avg_rating|stars"),
    num("height", 150, 205, "height|height in centimeters", names="height_cm", gt="taller than {v}",
        lt="shorter than {v}"),
    num("weight", 45, 120, "weight|weight in kilograms", names="weight_kg"),
    day("join_date", 2010, 2024, "join date|date joined|registration date", names="date_joined|registered_on",
        gt="who joined after {v}", lt="who joined before {v}"),
    cat("membership_level", "Bronze/Silver/Gold/Platinum", "membership level|membership tier|tier",
        names="tier|member_level"),
    flag("is_active", "active", "active status|activity flag", names="active|active_flag"),
    num("points", 0, 5000, "points|loyalty points|point balance", step=10, additive=True, names="loyalty_points"),
    cat("occupation", "Engineer/Teacher/Nurse/Designer/Accountant/Student/Lawyer/Chef/Retired",
        "occupation|job|profession", skew=0.4, names="job|profession"),
    # ---- places and organisations
    num("capacity", 100, 50000, "capacity|maximum capacity", step=50,
        names="max_capacity|total_capacity", gt="with room for more than {v}", lt="with room for fewer than {v}"),
    yr("opening_year", 1900, 2020, "opening year|year of opening", names="opened|year_opened",
       eq="opened in {v}", gt="opened after {v}", lt="opened before {v}"),
    yr("founded_year", 1850, 2020, "founding year|year founded|year of foundation", names="founded|year_founded",
       eq="founded in {v}", gt="founded after {v}", lt="founded before {v}"),
    num("num_employees", 5, 5000, "number of employees|staff count|headcount", additive=True,
        names="employee_count|employees|staff_size", gt="with more than {v} employees",
        lt="with fewer than {v} employees"),
    num("budget", 10000, 5000000, "budget|annual budget", step=1000, additive=True, names="annual_budget"),
    num("revenue", 50000, 90000000, "revenue|annual revenue|yearly revenue", step=1000, additive=True,
        names="annual_revenue|sales_revenue"),
    num("area", 40, 20000, "area|floor area|size in square meters", step=10, additive=True,
        names="floor_area|size_sqm|square_meters"),
    num("floors", 1, 60, "number of floors|floors|storeys", names="num_floors|floor_count"),
    text("website", V.website(), "website|web address|homepage", names="url|homepage", null=0.2),
    cat("region", "North/South/East/West/Central", "region|area|zone", skew=0.4, names="zone"),
    num("population", 1000, 5000000, "population|number of inhabitants|number of residents", step=1000,
        additive=True, gt="with more than {v} inhabitants", lt="with fewer than {v} inhabitants"),
    num("elevation", 0, 8800, "elevation|altitude|height above sea level", names="altitude|height_m",
        gt="higher than {v} meters", lt="lower than {v} meters"),
    # ---- things people buy, own, watch
    cash("price", 1, 1000, "price|cost|unit price", names="unit_price|list_price", additive=False,
         gt="more expensive than {v}|costing more than {v}", lt="cheaper than {v}|costing less than {v}"),
    num("stock", 0, 500, "stock|quantity in stock|units in stock", additive=True,
        names="in_stock|stock_qty|units_available"),
    num("quantity", 1, 20, "quantity|number of units|amount", additive=True, names="qty|units"),
    cat("color", COLORS, "color|colour", skew=0.5, names="colour"),
    cat("size", "S/M/L/XL", "size", skew=0.3),
    cat("brand", list(V.BRANDS[:8]), "brand|make|manufacturer", skew=0.5, names="brand_name"),
    yr("release_year", 1970, 2024, "release year|year of release", names="year_released|released",
       eq="released in {v}", gt="released after {v}", lt="released before {v}"),
    day("release_date", 1995, 2024, "release date|date of release", names="released_on|date_released",
        gt="released after {v}", lt="released before {v}"),
    text("description", V.description(), "description|summary", names="details|summary", null=0.2),
    text("notes", V.note(), "notes|remarks|comments", names="remarks|comments", null=0.4),
    real("discount", 0, 30, "discount|discount percentage|discount rate", names="discount_pct|discount_rate"),
    num("duration_min", 10, 240, "duration|length in minutes|running time",
        names="duration|minutes|running_time|length_min", gt="longer than {v} minutes",
        lt="shorter than {v} minutes"),
    num("duration_sec", 120, 420, "duration in seconds|length in seconds|duration",
        names="seconds|length_sec|duration"),
    num("pages", 60, 900, "number of pages|page count|pages", names="num_pages|page_count",
        gt="with more than {v} pages", lt="with fewer than {v} pages"),
    cat("language", LANGUAGES, "language", skew=0.9, names="lang"),
    num("sales", 1000, 5000000, "sales|copies sold|units sold", step=100, additive=True,
        names="units_sold|copies_sold"),
    num("views", 0, 2000000, "views|view count|number of views", step=10, additive=True,
        names="view_count|num_views"),
    num("num_songs", 1, 25, "number of songs|songs performed|song count", names="songs|songs_performed"),
    num("followers", 0, 3000000, "followers|number of followers|follower count", step=10,
        names="follower_count|num_followers", gt="with more than {v} followers"),
    cat("payment_method", "Credit Card/Cash/Debit Card/Bank Transfer/PayPal", "payment method|way of paying",
        skew=0.6, names="pay_method|payment_type"),
    cat("order_status", "Delivered/Shipped/Processing/Cancelled/Returned", "status|order status",
        names="status"),
    cat("priority", "Low/Medium/High/Critical", "priority|priority level", skew=0.4, names="priority_level"),
    # ---- money, amounts, scores
    cash("amount", 5, 5000, "amount|sum|value", names="total_amount|amt|value"),
    cash("fee", 10, 500, "fee|charge", names="charge|fee_amount"),
    cash("cost", 10, 2000, "cost|total cost|expense", names="total_cost|expense"),
    cash("ticket_price", 5, 250, "ticket price|price of a ticket|admission price", additive=False,
         names="admission_price|ticket_cost"),
    cash("balance", 0, 250000, "balance|account balance", names="current_balance"),
    cash("premium", 100, 5000, "premium|yearly premium|annual premium", names="annual_premium"),
    cash("monthly_rent", 400, 5000, "monthly rent|rent", names="rent|rent_per_month"),
    cash("daily_rate", 20, 300, "daily rate|price per day|rental price per day", additive=False,
         names="price_per_day|rate_per_day"),
    cash("net_worth", 1, 900, "net worth|net worth in millions", additive=False, names="worth_millions"),
    real("interest_rate", 0.5, 15, "interest rate|rate of interest", digits=2, names="rate|apr"),
    num("score", 0, 100, "score|result|points scored", names="points_scored|result"),
    num("grade", 40, 100, "grade|mark|score", names="mark|final_grade"),
    real("gpa", 2, 4, "GPA|grade point average", digits=2, names="grade_point_average"),
    num("credits", 1, 6, "credits|credit hours|number of credits", names="credit_hours|num_credits"),
    cat("semester", "Fall/Spring/Summer", "semester|term", skew=0.4, names="term"),
    num("goals", 0, 40, "goals|goals scored|number of goals", additive=True, names="goals_scored"),
    num("wins", 0, 40, "wins|number of wins|victories", additive=True, names="num_wins|won"),
    num("attendance", 100, 80000, "attendance|number of spectators|crowd size", step=10, additive=True,
        names="spectators|crowd"),
    num("distance_km", 100, 12000, "distance|distance in kilometers|length of the route", step=10,
        names="distance|km|length_km", gt="longer than {v} km", lt="shorter than {v} km"),
    num("max_speed", 80, 950, "top speed|maximum speed|speed", names="top_speed|speed"),
    num("seats", 2, 850, "number of seats|seat count|seats", names="num_seats|seat_count"),
    num("horsepower", 70, 600, "horsepower|engine power|power", names="hp|power"),
    num("mileage", 0, 250000, "mileage|kilometers driven|odometer reading", step=100, names="odometer|km_driven"),
    num("calories", 50, 1500, "calories|calorie count|energy in kcal", names="kcal|calorie_count"),
    num("bedrooms", 1, 6, "number of bedrooms|bedrooms|bedroom count", names="num_bedrooms|beds"),
    yr("event_year", 1990, 2024, "year", names="year|yr", eq="in {v}", gt="after {v}", lt="before {v}"),
    day("start_date", 2010, 2024, "start date|starting date|date it started", names="date_started|begins_on",
        gt="starting after {v}|that started after {v}", lt="starting before {v}|that started before {v}"),
    day("end_date", 2012, 2026, "end date|finish date|closing date", names="date_ended|ends_on",
        gt="ending after {v}", lt="ending before {v}"),
    day("event_date", 2015, 2024, "date|event date", names="date|held_on",
        gt="held after {v}", lt="held before {v}"),
    day("order_date", 2018, 2024, "order date|date of the order|purchase date", names="ordered_on|date_ordered",
        gt="placed after {v}", lt="placed before {v}"),
    day("visit_date", 2018, 2024, "visit date|date of the visit", names="date_of_visit|visited_on",
        gt="after {v}", lt="before {v}"),
    day("issue_date", 2015, 2024, "issue date|date of issue", names="issued_on|date_issued",
        gt="issued after {v}", lt="issued before {v}"),
    day("due_date", 2016, 2025, "due date|deadline", names="deadline|due_on"),
    day("payment_date", 2016, 2024, "payment date|date of payment", names="paid_on|date_paid",
        gt="paid after {v}", lt="paid before {v}"),
    # ---- yes/no facts
    flag("is_public", "public", "public flag|visibility", names="public|visible"),
    flag("is_24h", "open around the clock", "24-hour opening|open all night flag", names="open_24h|all_night"),
    flag("prescription_only", "prescription-only", "prescription requirement", names="rx_only|needs_prescription"),
    flag("has_playground", "equipped with a playground", "playground availability", names="playground"),
    flag("is_team_sport", "a team sport", "team sport flag", names="team_sport"),
    flag("is_vegetarian", "vegetarian", "vegetarian flag", names="vegetarian|veggie"),
    flag("success", "successful", "outcome|success flag", names="successful|summit_reached"),
    flag("has_elevator", "equipped with an elevator", "elevator availability", names="elevator|lift"),
    flag("is_verified", "verified", "verification status", names="verified"),
    flag("is_official", "official", "official status", names="official|is_official_language"),
    # ---- domain measures
    num("follower_count", 0, 50000, "number of followers|follower count|followers", names="followers|num_followers"),
    cash("monthly_fee", 10, 150, "monthly fee|membership fee|price per month", additive=False,
         names="fee_per_month|monthly_price"),
    num("num_students", 50, 3000, "number of students|enrollment|student count", step=10, additive=True,
        names="enrollment|student_count|students", gt="with more than {v} students", lt="with fewer than {v} students"),
    num("grade_level", 1, 12, "grade|grade level|school year", names="grade|year_group"),
    num("max_score", 10, 100, "maximum score|highest possible score|total marks", step=5, names="total_marks|out_of"),
    num("hours", 1, 2000, "hours|number of hours|hours worked", additive=True, names="hours_worked|num_hours"),
    num("num_citations", 0, 5000, "number of citations|citation count|citations", names="citations|cited_by",
        gt="cited more than {v} times", lt="cited fewer than {v} times"),
    num("h_index", 1, 120, "h-index|h index", names="hindex"),
    num("author_position", 1, 8, "author position|position in the author list|author order",
        names="author_order|position"),
    num("growing_days", 30, 200, "growing period in days|days to harvest|growing season length",
        names="days_to_harvest|growing_period"),
    num("tonnes", 1, 900, "yield in tonnes|tonnes harvested|quantity in tonnes", additive=True,
        names="yield_tonnes|tons|quantity_t"),
    num("tonnage", 100, 220000, "tonnage|gross tonnage|weight in tons", step=10, names="gross_tonnage|tons"),
    num("cargo_tons", 0, 200000, "cargo weight|tons of cargo|cargo in tons", step=10, additive=True,
        names="cargo|cargo_weight"),
    num("platforms", 1, 30, "number of platforms|platforms|platform count", names="num_platforms"),
    num("delay_min", 0, 180, "delay in minutes|delay|minutes late", names="delay|minutes_late",
        gt="delayed by more than {v} minutes", lt="delayed by less than {v} minutes"),
    num("num_members", 5, 900000, "number of members|membership size|member count", additive=True,
        names="members|member_count", gt="with more than {v} members", lt="with fewer than {v} members"),
    num("votes", 100, 90000, "votes|number of votes|vote count", additive=True, names="vote_count|num_votes",
        gt="with more than {v} votes", lt="with fewer than {v} votes"),
    real("vote_share", 0, 70, "vote share|share of the vote|percentage of votes", names="vote_pct|share"),
    real("turnout", 20, 90, "turnout|voter turnout|participation rate", names="turnout_pct|participation"),
    num("food_kg", 1, 200, "food in kilograms|amount of food|kilograms of food", additive=True,
        names="food_amount|kg_food"),
    num("dosage_mg", 5, 1000, "dosage in milligrams|dose|strength in mg", step=5, names="dose_mg|strength_mg|dosage"),
    num("max_output", 10, 5000, "maximum output|capacity per hour|units per hour", step=10,
        names="output_per_hour|capacity"),
    real("defect_rate", 0, 12, "defect rate|share of defects|defect percentage", names="defect_pct|defects"),
    num("venue_capacity", 1000, 80000, "venue capacity|number of seats at the venue|seating", step=100,
        names="capacity|seats"),
    num("delivery_min", 10, 120, "delivery time in minutes|delivery time|minutes to deliver",
        names="delivery_time|minutes", gt="that took more than {v} minutes", lt="that took less than {v} minutes"),
    num("num_subscribers", 1000, 900000, "number of subscribers|subscriber count|circulation", step=100,
        additive=True, names="subscribers|circulation"),
    num("word_count", 10, 5000, "word count|number of words|length in words", names="words|num_words",
        gt="longer than {v} words", lt="shorter than {v} words"),
    yr("vintage", 1985, 2022, "vintage|vintage year|year of harvest", names="vintage_year|year",
       eq="from {v}|of the {v} vintage", gt="newer than {v}", lt="older than {v}"),
    real("alcohol", 10, 16, "alcohol content|alcohol percentage|ABV", names="abv|alcohol_pct"),
    real("percentage", 1, 100, "percentage|share|proportion", names="pct|share"),
    num("elo", 900, 2850, "Elo rating|rating|chess rating", names="rating|elo_rating",
        gt="rated above {v}", lt="rated below {v}"),
    num("prize_money", 500, 9000000, "prize money|prize fund|total prize", step=100, additive=True,
        names="prize_fund|purse"),
    num("num_rounds", 3, 13, "number of rounds|rounds|round count", names="rounds"),
    num("final_rank", 1, 200, "final rank|final standing|place", names="final_position|standing"),
    num("num_moves", 10, 150, "number of moves|moves|game length in moves", names="moves|move_count"),
    num("likes", 0, 90000, "likes|number of likes|like count", additive=True, names="like_count|num_likes",
        gt="with more than {v} likes", lt="with fewer than {v} likes"),
    num("gnp", 100, 9000000, "GNP|gross national product|economic output", step=100, additive=True,
        names="gross_national_product|gnp_musd"),
    yr("independence_year", 1500, 1990, "independence year|year of independence", names="indep_year",
       eq="that became independent in {v}", gt="that became independent after {v}",
       lt="that became independent before {v}"),
    num("num_speakers", 1000000, 1500000000, "number of speakers|speaker count|speakers", step=100000,
        names="speakers|speaker_count"),
    num("ranking_points", 0, 12000, "ranking points|points|ranking score", step=5, names="rank_points|points"),
    num("ranking", 1, 500, "ranking|rank|world ranking", names="rank|world_rank"),
    num("killed", 0, 5000, "number killed|deaths|fatalities", additive=True, names="deaths|num_killed"),
    num("injured", 0, 9000, "number injured|injuries|wounded", additive=True, names="injuries|num_injured"),
    num("num_pages", 1, 400, "number of pages|page count|pages", names="pages|page_count"),
    num("access_count", 0, 20000, "access count|number of times opened|number of accesses",
        names="times_accessed|views"),
    num("version_number", 1, 12, "version number|version", names="version|ver"),
    num("earnings", 0, 9000000, "earnings|total earnings|career earnings", step=100, additive=True,
        names="total_earnings|money_won"),
    num("best_finish", 1, 100, "best finish|best result|highest finish", names="best_place|top_finish"),
    num("buy_in", 100, 100000, "buy-in|entry fee|buy-in amount", step=100, names="entry_fee|buyin"),
    num("prize_pool", 10000, 90000000, "prize pool|total prize money|prize fund", step=1000, additive=True,
        names="prize_fund|purse"),
    num("final_place", 1, 500, "final place|finishing position|rank at the end", names="place|finish"),
    num("winnings", 0, 9000000, "winnings|prize won|money won", step=100, additive=True,
        names="prize_won|payout"),
    cash("credit_limit", 500, 50000, "credit limit|spending limit", additive=False, names="limit_amount|max_credit"),
    num("num_shows", 5, 150, "number of shows|show count|concerts in the tour", names="shows|show_count"),
    num("num_commits", 1, 5000, "number of commits|commit count|commits", names="commits|commit_count"),
    num("num_tables", 5, 300, "number of tables|table count|tables", names="tables_count|game_tables"),
]}


# ----------------------------------------------------------------------------- labels

@dataclass(frozen=True)
class Label:
    """The naming column of an entity: its values, its column names and its question wordings."""

    kind: str  # person, title, course, company, place, product, code, pool
    args: tuple[str, ...]  # suffixes, nouns, prefixes or the pool's values
    phrases: tuple[str, ...]
    names: tuple[tuple[str, ...], ...]  # e.g. ("name",) or ("title",); the style may prefix the entity

    @property
    def pool(self) -> tuple[str, ...]:
        """Every value it may take (a table has at most this many rows); built on first use."""
        return _pool(self.kind, self.args)


@functools.lru_cache(maxsize=None)
def _pool(kind: str, args: tuple[str, ...]) -> tuple[str, ...]:
    if kind == "person":
        return tuple(V.person_names())
    if kind == "title":
        return tuple(V.titles())
    if kind == "course":
        return tuple(sorted(f"{lvl} {s}" for lvl in ("Introduction to", "Advanced", "Topics in", "Foundations of",
                                                     "Applied", "Modern") for s in SUBJECTS))
    if kind == "company":
        return tuple(V.company_names(*args))
    if kind == "place":
        return tuple(V.place_names(*args))
    if kind == "product":
        return tuple(V.product_names(*args))
    if kind == "code":
        return tuple(V.codes(*args))
    return args  # pool


_LABEL_WORDS = {  # kind -> (question wordings, column names)
    "person": (("name", "full name"), (("name",), ("full", "name"))),
    "title": (("title", "name"), (("title",), ("name",))),
    "course": (("title", "name"), (("title",), ("name",))),
    "company": (("name", "company name"), (("name",),)),
    "place": (("name",), (("name",),)),
    "product": (("name", "product name", "model"), (("name",), ("model",))),
    "code": (("code", "identifier", "reference code"), (("code",), ("ref",))),
    "pool": (("name",), (("name",),)),
}


def label(spec: str, args: tuple[str, ...]) -> Label:
    """A label from its DSL spec: person, title, course, company(...), place(...), product(...),
    code(...), pool(...)."""
    if spec not in _LABEL_WORDS:
        raise ValueError(f"unknown label kind {spec!r}")
    phrases, names = _LABEL_WORDS[spec]
    return Label(spec, args, phrases, names)


SUBJECTS = """Physics Chemistry Biology Mathematics History Economics Philosophy Linguistics
Psychology Sociology Geology Astronomy Literature Music Architecture Statistics""".split()
