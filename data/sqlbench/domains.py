"""The benchmark's domains: one compact definition each (tables, column kinds and phrases, value
ranges, row counts). Tables are listed parents first; a foreign key column has the same name as
the primary key it references. `HELDOUT_DB` is never trained on: it measures transfer to a schema
the model has not seen, so it is a typical domain (authors, books, members, loans), not an odd one."""

from __future__ import annotations

from data.sqlbench.schema import Domain, cat, derived, fk, label, num, pk, real, table, year
from data.sqlbench.values import (
    CITIES, COUNTRIES, NATIONALITIES, SUBJECTS, codes, company_names, distinct_from,
    person_names, street_addresses, titles, venue_names,
)

HELDOUT_DB = "library"

GENRES = ["Drama", "Comedy", "Action", "Thriller", "Documentary", "Animation", "Horror", "Romance"]
BOOK_GENRES = ["Fantasy", "Mystery", "Romance", "Science Fiction", "History", "Biography", "Poetry"]


def concert_singer() -> Domain:
    return Domain("concert_singer", 1, (
        table("stadium", 28,
              pk("stadium_id"), label("name", venue_names("Stadium", "Arena", "Park")),
              cat("city", CITIES[:9]), num("capacity", 5000, 90000, 500, total=True),
              year("opening_year", 1950, 2018)),
        table("singer", 70,
              pk("singer_id"), label("name", person_names()), cat("country", COUNTRIES[:8]),
              cat("gender", ["Female", "Male"], skew=0.2), num("age", 18, 66), year("debut_year", 1990, 2022)),
        table("concert", 90,
              pk("concert_id"), label("name", titles(("", "The "))),
              fk("stadium_id", "stadium", "held at"), year("year", 2012, 2024),
              cat("genre", ["Pop", "Rock", "Jazz", "Classical", "Folk", "Hip Hop"]),
              num("ticket_price", 20, 180, 5, total=True)),
        table("performance", 220,
              fk("singer_id", "singer", "by"), fk("concert_id", "concert", "in"),
              num("songs_performed", 3, 20), link=("singer_id", "concert_id", "that performed in", "featuring")),
    ))


def university() -> Domain:
    return Domain("university", 2, (
        table("department", 16,
              pk("department_id"), label("name", distinct_from(SUBJECTS)),
              cat("building", ["Main Hall", "North Wing", "Science Center", "Arts Building", "East Campus"]),
              num("budget", 200000, 2000000, 10000, total=True), year("founded_year", 1890, 1990)),
        table("instructor", 60,
              pk("instructor_id"), label("name", person_names()),
              fk("department_id", "department", "working in"),
              cat("rank", ["Professor", "Associate Professor", "Assistant Professor", "Lecturer"]),
              num("salary", 50000, 180000, 1000, total=True), year("hire_year", 1990, 2023)),
        table("course", 80,
              pk("course_id"),
              label("title", distinct_from(sorted(f"{lvl} {s}" for lvl in (
                  "Introduction to", "Advanced", "Topics in", "Foundations of", "Applied", "Modern")
                  for s in SUBJECTS))),
              fk("department_id", "department", "offered by"), num("credits", 1, 6),
              cat("level", ["Introductory", "Intermediate", "Advanced"])),
        table("student", 130,
              pk("student_id"), label("name", person_names()), cat("major", SUBJECTS[:9]),
              num("age", 17, 30), year("enrollment_year", 2016, 2024), cat("home_city", CITIES[5:14])),
        table("enrollment", 320,
              fk("student_id", "student", "of"), fk("course_id", "course", "in"),
              num("grade", 50, 100), cat("semester", ["Fall", "Spring", "Summer"]),
              link=("student_id", "course_id", "that enrolled in", "taken by")),
    ))


def hospital() -> Domain:
    return Domain("hospital", 3, (
        table("hospital", 20,
              pk("hospital_id"), label("name", venue_names("General Hospital", "Medical Center", "Clinic")),
              cat("city", CITIES[10:19]), num("beds", 50, 1200, 10, total=True),
              year("opened_year", 1900, 2015)),
        table("doctor", 80,
              pk("doctor_id"), label("name", person_names()),
              fk("hospital_id", "hospital", "working at"),
              cat("specialty", ["Cardiology", "Neurology", "Pediatrics", "Oncology", "Orthopedics",
                                "Dermatology", "Radiology"]),
              num("years_of_experience", 1, 40), num("salary", 60000, 400000, 1000, total=True)),
        table("patient", 150,
              pk("patient_id"), label("name", person_names()), cat("gender", ["Female", "Male"], skew=0.2),
              num("age", 1, 95), cat("blood_type", ["O+", "A+", "B+", "O-", "A-", "AB+", "B-"]),
              cat("city", CITIES[10:19])),
        table("appointment", 320,
              pk("appointment_id"), fk("patient_id", "patient", "for"), fk("doctor_id", "doctor", "with"),
              year("year", 2018, 2024), num("cost", 40, 600, 5, total=True),
              link=("patient_id", "doctor_id", "that had an appointment with", "that saw")),
    ))


def library() -> Domain:
    return Domain("library", 4, (
        table("author", 40,
              pk("author_id"), label("name", person_names()), cat("nationality", NATIONALITIES[:8]),
              year("birth_year", 1920, 1990)),
        table("publisher", 14,
              pk("publisher_id"), label("name", company_names("Press", "Books", "Publishing")),
              cat("city", CITIES[::4]), year("founded_year", 1850, 2010)),
        table("book", 160,
              pk("book_id"), label("title", titles(("", "The "))),
              fk("author_id", "author", "written by"), fk("publisher_id", "publisher", "published by"),
              cat("genre", BOOK_GENRES), year("publication_year", 1960, 2023), num("pages", 90, 900),
              real("price", 5, 60, 1, total=True)),
        table("member", 110,
              pk("member_id"), label("name", person_names()), cat("city", CITIES[::4]),
              num("age", 16, 85), cat("membership_type", ["Standard", "Premium", "Student", "Senior"]),
              year("registration_year", 2005, 2024)),
        table("loan", 320,
              pk("loan_id"), fk("member_id", "member", "made by"), fk("book_id", "book", "of"),
              year("loan_year", 2019, 2024), num("days", 3, 60),
              link=("member_id", "book_id", "that borrowed", "borrowed by")),
    ))


def airline() -> Domain:
    airports = CITIES[1:11]
    return Domain("airline", 5, (
        table("airline", 16,
              pk("airline_id"), label("name", company_names("Airways", "Air", "Airlines")),
              cat("country", COUNTRIES[3:11]), year("founded_year", 1920, 2015),
              num("fleet_size", 10, 400, total=True)),
        table("pilot", 80,
              pk("pilot_id"), label("name", person_names()), fk("airline_id", "airline", "flying for"),
              cat("nationality", NATIONALITIES[4:12]), num("age", 25, 64),
              num("flight_hours", 500, 20000, 50, total=True)),
        table("flight", 150,
              pk("flight_id"), label("flight_number", codes(["AZ", "BK", "CX", "DL", "EW", "FR"], 100, 999)),
              fk("airline_id", "airline", "operated by"), cat("origin", airports),
              derived("destination", "category", "TEXT",
                      lambda rng, row: rng.choice([c for c in airports if c != row["origin"]])),
              num("distance", 200, 9000, 10), num("price", 50, 1500, 5, total=True)),
        table("crew_assignment", 260,
              fk("pilot_id", "pilot", "of"), fk("flight_id", "flight", "on"),
              cat("role", ["Captain", "First Officer"], skew=0.1),
              link=("pilot_id", "flight_id", "that flew", "flown by")),
    ))


def retail() -> Domain:
    return Domain("retail", 6, (
        table("supplier", 16,
              pk("supplier_id"), label("name", company_names("Supplies", "Trading", "Wholesale")),
              cat("country", COUNTRIES[::2]), real("rating", 1, 5, 1)),
        table("product", 90,
              pk("product_id"),
              label("name", distinct_from(sorted(f"{w} {n}" for w in ("Nova", "Zen", "Pro", "Eco", "Max", "Aero")
                                         for n in ("Kettle", "Lamp", "Blender", "Backpack", "Speaker", "Jacket",
                                                   "Drone", "Tent", "Watch", "Chair", "Puzzle", "Racket",
                                                   "Toaster", "Headphones", "Scooter", "Camera")))),
              fk("supplier_id", "supplier", "supplied by"),
              cat("category", ["Electronics", "Kitchen", "Outdoor", "Toys", "Clothing", "Sports"]),
              real("price", 5, 500, 2), num("stock", 0, 500, total=True)),
        table("customer", 120,
              pk("customer_id"), label("name", person_names()), cat("city", CITIES[20:29]),
              num("age", 18, 80), cat("membership_level", ["Bronze", "Silver", "Gold", "Platinum"])),
        table("store", 16,
              pk("store_id"), label("name", venue_names("Market", "Outlet", "Store")),
              cat("city", CITIES[20:29]), year("opening_year", 1985, 2023),
              num("floor_area", 300, 5000, 50, total=True)),
        table("purchase", 360,
              pk("purchase_id"), fk("customer_id", "customer", "made by"), fk("product_id", "product", "of"),
              fk("store_id", "store", "at"), num("quantity", 1, 10, total=True),
              year("purchase_year", 2019, 2024),
              link=("customer_id", "product_id", "that bought", "bought by")),
    ))


def football() -> Domain:
    suffixes = ["United", "Rovers", "Athletic", "City", "Wanderers"]
    return Domain("football", 7, (
        table("league", 12,
              pk("league_id"),
              label("name", distinct_from([f"{c} {d}" for c in ("Premier", "Coastal", "Northern", "Southern")
                                           for d in ("League", "Division", "Cup Series")])),
              cat("country", COUNTRIES[8:14]), year("founded_year", 1888, 1995)),
        table("team", 44,
              pk("team_id"), label("name", distinct_from(sorted(f"{c} {s}" for c in CITIES for s in suffixes))),
              derived("city", "category", "TEXT", lambda rng, row: row["name"].rsplit(" ", 1)[0]),
              fk("league_id", "league", "playing in"), year("founded_year", 1870, 1990),
              num("budget", 5, 400, total=True)),
        table("player", 240,
              pk("player_id"), label("name", person_names()), fk("team_id", "team", "playing for"),
              cat("position", ["Midfielder", "Defender", "Forward", "Goalkeeper"], skew=0.5),
              num("age", 17, 38), num("goals", 0, 40, total=True), cat("nationality", NATIONALITIES[:9])),
        table("sponsor", 24,
              pk("sponsor_id"), label("name", company_names("Bank", "Motors", "Telecom", "Drinks")),
              cat("industry", ["Banking", "Automotive", "Telecom", "Beverage", "Insurance", "Airline"]),
              cat("country", COUNTRIES[8:14])),
        table("sponsorship", 70,
              fk("team_id", "team", "of"), fk("sponsor_id", "sponsor", "by"),
              num("annual_amount", 1, 50, total=True), year("start_year", 2010, 2024),
              link=("team_id", "sponsor_id", "sponsored by", "sponsoring")),
    ))


def movies() -> Domain:
    return Domain("movies", 8, (
        table("studio", 14,
              pk("studio_id"), label("name", company_names("Pictures", "Studios", "Films")),
              cat("country", COUNTRIES[::3]), year("founded_year", 1910, 2015)),
        table("director", 40,
              pk("director_id"), label("name", person_names()), cat("nationality", NATIONALITIES[2:10]),
              year("birth_year", 1940, 1995)),
        table("movie", 150,
              pk("movie_id"), label("title", titles(("", "The "))),
              fk("director_id", "director", "directed by"), fk("studio_id", "studio", "produced by"),
              cat("genre", GENRES), year("release_year", 1975, 2024), num("budget", 1, 250, total=True),
              real("rating", 3, 9.5, 1)),
        table("actor", 100,
              pk("actor_id"), label("name", person_names()), cat("gender", ["Female", "Male"], skew=0.1),
              year("birth_year", 1940, 2005), cat("nationality", NATIONALITIES[2:10])),
        table("appearance", 340,
              fk("actor_id", "actor", "by"), fk("movie_id", "movie", "in"),
              num("screen_time", 5, 150), link=("actor_id", "movie_id", "that appeared in", "starring")),
    ))


def real_estate() -> Domain:
    return Domain("real_estate", 9, (
        table("agent", 30,
              pk("agent_id"), label("name", person_names()), cat("city", CITIES[25:33]),
              num("years_of_experience", 1, 35), real("commission_rate", 1, 6, 1)),
        table("property", 150,
              pk("property_id"), label("address", street_addresses()), cat("city", CITIES[25:33]),
              cat("property_type", ["Apartment", "House", "Townhouse", "Villa", "Studio"]),
              num("bedrooms", 1, 6), num("price", 80000, 2000000, 1000, total=True),
              year("built_year", 1900, 2023), fk("agent_id", "agent", "listed by"),
              singular="property", plural="properties"),
        table("buyer", 100,
              pk("buyer_id"), label("name", person_names()), cat("city", CITIES[25:33]),
              num("age", 22, 80), num("budget", 100000, 2500000, 5000, total=True)),
        table("sale", 100,
              pk("sale_id"), fk("property_id", "property", "of"), fk("buyer_id", "buyer", "to"),
              year("sale_year", 2015, 2024), num("sale_price", 80000, 2200000, 1000, total=True),
              link=("buyer_id", "property_id", "that purchased", "purchased by")),
    ))


def museum() -> Domain:
    return Domain("museum", 10, (
        table("museum", 16,
              pk("museum_id"), label("name", venue_names("Museum", "Gallery", "Art Center")),
              cat("city", CITIES[::5]), year("founded_year", 1850, 2010),
              num("annual_visitors", 20000, 3000000, 1000, total=True)),
        table("artist", 50,
              pk("artist_id"), label("name", person_names()), cat("nationality", NATIONALITIES[::2]),
              year("birth_year", 1820, 1990)),
        table("artwork", 180,
              pk("artwork_id"), label("title", titles(("", "The "))),
              fk("artist_id", "artist", "created by"), fk("museum_id", "museum", "kept at"),
              cat("medium", ["Oil", "Watercolor", "Sculpture", "Photography", "Ink", "Acrylic"]),
              year("year_created", 1850, 2020), num("value", 1000, 5000000, 1000, total=True)),
        table("exhibition", 40,
              pk("exhibition_id"), label("title", titles(("Visions of ", "Echoes of "))),
              fk("museum_id", "museum", "hosted by"), year("year", 2005, 2024),
              num("ticket_price", 0, 40, total=True),
              cat("theme", ["Modern Art", "Portraits", "Landscapes", "Photography", "Sculpture"])),
        table("exhibition_item", 170,
              fk("exhibition_id", "exhibition", "in"), fk("artwork_id", "artwork", "of"),
              link=("artwork_id", "exhibition_id", "shown in", "showing")),
    ))


def all_domains() -> list[Domain]:
    return [concert_singer(), university(), hospital(), library(), airline(), retail(), football(),
            movies(), real_estate(), museum()]
