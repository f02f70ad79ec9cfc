"""The domains: entity types with their attributes, and the relations between them.

Each domain is written in a small notation, one entity per line, parsed once at import:

    == domain_name
    entity[/plural] [(synonym, synonym)]: label | attributes [| references [| link verbs]]

  label        `-` (none), person, title, course, company(Suffix, ...), place(Suffix, ...),
               product(Noun, ...), code(Prefix, ...) or pool(Value, ...): see vocab.label
  attributes   keys of vocab.ATTRIBUTES, `key:low-high` for another range, or `key{A/B/C}` for a
               category with its own values
  references   `parent: child-to-parent wording / parent-to-child wording`, `;`-separated: a
               foreign key from this entity to the parent ("doctors *working at* the hospital",
               "hospitals *employing* doctors ...")
  link verbs   for an entity with two references that links them (enrollment, casting):
               `a-to-b wording / b-to-a wording` ("students *enrolled in* the course ...")

A database (compose.py) takes a connected subset of one domain's entities and a subset of each
entity's attributes, so one domain gives many different databases. Questions use the entity and
attribute wordings, never the SQL identifiers."""

from __future__ import annotations

import re
from dataclasses import dataclass

from data.sqlbench.vocab import ATTRIBUTES, Attribute, Label, cat, label

DOMAINS_TEXT = """
== concert_singer
stadium (venue, arena): place(Stadium, Arena, Park) | city capacity:2000-90000 opening_year
record_label (label, record company): company(Records, Music, Sound) | country founded_year:1940-2020 |
singer (performer, vocalist): person | country age:18-70 gender net_worth birth_year:1950-2004 | record_label: signed to / signing
concert (show, gig): title | event_year:2010-2024 theme{Pop Night/Rock Classics/Jazz Evening/Unplugged/Summer Hits} ticket_price | stadium: held at / hosting
performance: - | num_songs | singer: by / who gave; concert: in / with | who performed in / featuring
song (track): title | genre{Pop/Rock/Jazz/Soul/Folk/Hip Hop} duration_sec release_year:1990-2024 sales | singer: by / who recorded

== university
department (faculty): pool(Physics, Chemistry, Biology, Mathematics, History, Economics, Philosophy, Linguistics, Psychology, Sociology, Geology, Astronomy, Literature, Music, Architecture, Statistics) | building{Main Hall/North Wing/Science Center/Arts Building/East Campus} budget founded_year
instructor (professor, lecturer): person | academic_rank{Professor/Associate Professor/Assistant Professor/Lecturer} salary hire_date email | department: in / employing
classroom (room, lecture hall): code(RM, LH, LAB) | capacity:10-400 building{Main Hall/North Wing/Science Center/Arts Building/East Campus} |
course (class, module): course | credits course_level{Introductory/Intermediate/Advanced} | department: offered by / offering; classroom: taught in / hosting
scholarship (grant, bursary): title | amount:500-40000 start_date | student: awarded to / holding
student (pupil, learner): person | major{Physics/History/Economics/Biology/Mathematics/Music/Literature} age:17-30 gpa city email
enrollment (registration): - | grade semester | student: of / with; course: in / with | enrolled in / taken by

== hospital
hospital (medical center, clinic): place(Hospital, Medical Center, Clinic) | city capacity:50-1200 founded_year phone
doctor (physician): person | specialty{Cardiology/Neurology/Pediatrics/Oncology/Orthopedics/Dermatology/Radiology} salary years_experience email | hospital: working at / employing
patient: person | age:1-95 gender blood_type{O+/A+/B+/O-/A-/AB+/B-} city birth_date phone
appointment (visit): - | visit_date fee notes | patient: of / who had; doctor: with / who had | who saw / who treated
ward (unit, hospital ward): pool(Cardiac Ward, Maternity Ward, Surgical Ward, Children Ward, Intensive Care, Oncology Ward, Geriatric Ward, Emergency Unit) | capacity:5-80 floors:0-12 | hospital: in / with
nurse: person | salary hire_date years_experience | ward: working in / staffed by
medication (drug, medicine): pool(Amoxicillin, Ibuprofen, Metformin, Lisinopril, Atorvastatin, Omeprazole, Amlodipine, Albuterol, Sertraline, Paracetamol, Cetirizine, Insulin, Warfarin, Prednisone, Gabapentin, Losartan, Azithromycin, Levothyroxine) | price form{Tablet/Capsule/Syrup/Injection/Inhaler} | 
prescription: - | quantity:1-90 issue_date | patient: for / who received; medication: of / in | prescribed / prescribed to

== airline
airline (carrier): company(Airways, Air, Airlines) | country founded_year num_employees:200-90000 | 
airport: code(A, B, C, D, E, F) | city country elevation:0-3000 | 
aircraft/aircraft (plane, airplane): code(N, G, D, F) | model{A320/A350/B737/B777/B787/E190/ATR72} seats:50-450 max_speed:400-950 release_year:1990-2022 | airline: owned by / owning
pilot (aviator): person | age:25-64 nationality years_experience:1-40 hire_date | airline: flying for / employing
flight: code(AZ, BK, CX, DL, EW, FR) | event_date distance_km ticket_price | airline: operated by / operating; airport: departing from / with departures of
crew_assignment (assignment): - | crew_role{Captain/First Officer} | pilot: of / with; flight: on / with | who flew / flown by
passenger (traveler, flyer): person | nationality age:1-95 email membership_level |
flight_booking (booking, reservation): - | ticket_class{First/Business/Economy} amount:40-9000 order_date | passenger: made by / who made; flight: for / with | booked on / carrying

== retail_store
supplier (vendor): company(Supplies, Trading, Wholesale) | country rating phone | 
product (item, article): product(Kettle, Lamp, Blender, Backpack, Speaker, Jacket, Drone, Tent, Watch, Chair, Puzzle, Toaster) | category{Electronics/Kitchen/Outdoor/Toys/Clothing/Sports} price stock color | supplier: supplied by / supplying
customer (client, shopper): person | city age membership_level email join_date | 
store (shop, branch): place(Market, Outlet, Store) | city opening_year area:300-5000 | 
purchase (sale): - | quantity order_date payment_method | customer: made by / who made; product: of / with; store: at / with | who bought / bought by
store_employee (employee, clerk, staff member): person | salary hire_date job_title{Cashier/Manager/Stock Clerk/Sales Associate} | store: working at / employing
promotion (offer, discount campaign): title | discount start_date end_date | product: for / with

== football_league
league (competition): pool(Premier League, Coastal League, Northern Division, Southern Division, Metro Cup, National League, Central League, Island League) | country founded_year:1880-1990 | 
team (club, side): place(United, Rovers, Athletic, City, Wanderers) | city founded_year:1870-1995 budget wins | league: playing in / with
player (footballer): person | position{Midfielder/Defender/Forward/Goalkeeper} age:17-38 goals nationality height salary | team: playing for / with
sponsor (sponsoring company): company(Bank, Motors, Telecom, Drinks) | industry{Banking/Automotive/Telecom/Beverage/Insurance} country | 
sponsorship (sponsorship deal): - | amount:10000-5000000 start_date | team: of / with; sponsor: by / with | sponsored by / sponsoring
match (game, fixture): - | event_date attendance score:0-7 | team: played by / that played
coach (manager, head coach): person | nationality age:30-75 salary | team: coaching / coached by
transfer (transfer deal): - | amount:10000-90000000 event_date | player: of / with

== cinema_films
studio (production company): company(Pictures, Studios, Films) | country founded_year:1910-2015 | 
director (filmmaker): person | nationality birth_year:1940-1995 | 
movie (film, picture): title | genre{Drama/Comedy/Action/Thriller/Documentary/Animation/Horror} release_year budget:100000-250000000 rating duration_min:70-200 | director: directed by / who directed; studio: produced by / that produced
actor (performer, star): person | gender birth_year:1940-2005 nationality height | 
casting (role, appearance): - | character_role{Lead/Supporting/Cameo} duration_min:1-150 | actor: of / with; movie: in / with | who appeared in / starring
review (critique): - | rating score event_date | movie: of / with
award (prize, honor): - | award_name{Best Picture/Best Director/Best Actor/Best Actress/Best Score/Best Screenplay} event_year:1980-2024 | movie: for / receiving

== real_estate
agency (real estate agency, firm): company(Realty, Estates, Properties) | city founded_year | 
agent (realtor, broker): person | years_experience phone email | agency: working for / employing
neighborhood (district, area): pool(Old Town, Riverside, Hillcrest, Harbor View, Green Park, Westfield, Northgate, Lakeside, Maple Heights, Southbank) | population area:100-9000 |
property (home, listing): code(P, L, H) | property_type{Apartment/House/Townhouse/Villa/Studio} description bedrooms price:80000-2000000 area:30-600 opening_year:1900-2023 | agent: listed by / listing; neighborhood: located in / containing
buyer (purchaser, client): person | city age budget:100000-2500000 | 
sale (transaction, deal): - | amount:80000-2200000 event_date | property: of / with; buyer: to / who made | purchased by / who purchased
viewing (visit, showing): - | visit_date notes | property: of / with; buyer: by / who made | viewed by / who viewed

== art_museum
museum (gallery): place(Museum, Gallery, Art Center) | city founded_year:1850-2010 attendance:20000-3000000 ticket_price | 
artist (painter, creator): person | nationality birth_year:1820-1990 gender | 
artwork (work of art, piece): title | medium{Oil/Watercolor/Sculpture/Photography/Ink/Acrylic} event_year:1850-2020 amount:1000-5000000 | artist: created by / who created; museum: kept at / holding
exhibition (show): title | start_date theme{Modern Art/Portraits/Landscapes/Photography/Sculpture} ticket_price | museum: hosted by / hosting
exhibition_item (exhibit): - | notes | exhibition: in / with; artwork: of / with | showing / shown in
curator: person | hire_date salary email | museum: working at / employing

== restaurant_guide
restaurant (eatery, diner): place(Bistro, Grill, Kitchen, Cafe, Tavern) | cuisine{Italian/Japanese/Mexican/Indian/French/Thai/Greek} city rating price:10-120 opening_year:1950-2024 description | 
chef (cook): person | nationality years_experience salary | restaurant: working at / employing
dish (meal, menu item): pool(Margherita Pizza, Pad Thai, Beef Tacos, Caesar Salad, Ramen, Butter Chicken, Moussaka, Sushi Platter, Lasagna, Falafel Wrap, Onion Soup, Green Curry, Burrito Bowl, Risotto, Tiramisu, Churros) | price:4-60 calories dish_type{Main/Starter/Dessert/Side} | restaurant: served at / serving
diner (guest, customer): person | city age email | 
reservation (booking): - | event_date quantity:1-12 notes | diner: made by / who made; restaurant: at / with | who booked / booked by
review (critique): - | rating event_date description | restaurant: of / with; diner: written by / who wrote | reviewed by / who reviewed

== hotel_chain
hotel (inn, resort): place(Hotel, Resort, Inn, Lodge) | city rating opening_year:1920-2022 floors:1-40 | 
room: code(R, S, D) | room_type{Single/Double/Suite/Family/Deluxe} daily_rate:40-900 floors:1-40 description | hotel: in / with
guest (visitor): person | country email phone membership_level | 
booking (reservation, stay): - | start_date end_date amount:40-9000 payment_method | guest: made by / who made; room: for / with | who stayed in / occupied by
service (amenity): pool(Spa, Gym, Room Service, Laundry, Valet Parking, Airport Shuttle, Breakfast Buffet, Minibar) | price:5-200 |
service_usage (service order, charge): - | event_date quantity:1-6 | guest: by / who used; service: of / with | who used / used by
staff_member (employee, worker): person | staff_role{Receptionist/Housekeeper/Manager/Concierge/Chef} salary hire_date | hotel: working at / employing

== banking
branch (office): place(Branch, Office) | city opening_year:1950-2022 num_employees:3-120 | 
customer (client, account holder): person | city birth_date email membership_level | branch: registered at / serving
account: code(AC, SV, CK) | account_type{Checking/Savings/Business/Student} balance start_date | customer: held by / holding
loan (credit): - | loan_type{Mortgage/Car/Personal/Student} amount:1000-500000 interest_rate start_date | customer: taken by / who took; branch: issued by / issuing
bank_transaction (transaction, transfer): - | amount event_date transaction_type{Deposit/Withdrawal/Transfer/Payment} | account: on / with
credit_card (card): code(CC, VISA, MC) | card_type{Visa/Mastercard/Amex/Debit} credit_limit issue_date | customer: held by / holding
bank_employee (employee, banker): person | job_title{Teller/Loan Officer/Manager/Advisor} salary hire_date | branch: working at / employing

== insurance
insurance_agent (agent): person | years_experience email phone | 
client (policyholder, customer): person | age city gender occupation | insurance_agent: served by / serving
policy (insurance policy, contract): code(POL, INS) | policy_type{Auto/Home/Life/Health/Travel} premium start_date | client: held by / holding
claim (insurance claim): - | amount:100-90000 issue_date claim_status{Approved/Pending/Rejected/Under Review} | policy: against / with
vehicle (car, insured vehicle): code(CAR, VH) | brand color release_year:1995-2024 | client: owned by / owning
insurance_company (insurer, carrier): company(Insurance, Assurance, Mutual) | country founded_year |
claim_payment (payout, settlement): - | amount:100-90000 payment_date | claim: for / with

== car_rental
rental_location (location, rental office): place(Downtown, Airport, Station, Harbor) | city phone | 
car (vehicle, rental car): code(CR, RX, EV) | brand color fuel_type{Petrol/Diesel/Electric/Hybrid} seats:2-9 daily_rate mileage release_year:2010-2024 | rental_location: based at / with
renter (customer, driver): person | age:21-85 city email birth_date | 
rental (hire): - | start_date end_date amount:30-4000 | car: of / with; renter: by / who made | rented by / who rented
maintenance_record (service, repair): - | event_date cost:40-5000 description | car: of / with
insurance_plan (coverage, insurance option): pool(Basic Cover, Full Cover, Glass Cover, Theft Cover, Zero Excess, Roadside Plus) | daily_rate:3-60 |
rental_insurance (insurance purchase): - | amount:5-900 | rental: for / with; insurance_plan: of / with | covered by / covering

== online_shop
seller (merchant, vendor): company(Store, Shop, Goods, Market) | country rating join_date | 
item (product, listing): product(Phone Case, Mug, Lamp, Keyboard, Notebook, Bottle, Scarf, Charger, Candle, Poster) | price stock category{Home/Electronics/Fashion/Books/Garden/Beauty} | seller: sold by / selling
shopper (buyer, customer): person | city email join_date is_active | 
order (purchase, shop order): code(ORD, SO) | order_date order_status payment_method amount | shopper: placed by / who placed
order_item (order line, line item): - | quantity price:1-1000 | order: in / containing; item: of / in | containing / included in
shipment (delivery, parcel): code(SH, TRK) | event_date cost:2-80 carrier_name{DHL/UPS/FedEx/Local Post} | order: for / with
product_review (review, rating): - | rating description event_date | item: of / with; shopper: written by / who wrote | reviewed by / who reviewed

== music_streaming
artist (musician, band): person | country followers is_active | 
album (record): title | release_year:1965-2024 genre{Pop/Rock/Electronic/Jazz/Classical/Hip Hop/Country} sales | artist: by / who released
track (song): title | duration_sec views release_year:1965-2024 | album: on / containing
listener (user, subscriber): person | country age:13-80 join_date subscription_plan{Free/Premium/Family/Student} | 
playlist: title | follower_count:0-50000 is_public | listener: created by / who created
concert_tour (tour): title | start_date num_shows | artist: by / who went on
playlist_track (playlist entry): - | join_date | playlist: in / with; track: of / in | containing / included in

== fitness_gym
gym (fitness center, club): place(Fitness, Gym, Athletic Club) | city opening_year:1980-2024 area:200-6000 monthly_fee description | 
trainer (coach, instructor): person | specialty{Yoga/Strength/Cardio/Pilates/Boxing/Swimming} hourly_rate years_experience | gym: working at / employing
gym_member (member): person | age:16-85 gender join_date membership_level | gym: registered at / with
fitness_class (class, session): pool(Morning Yoga, Spin Blast, Power Lifting, Core Burn, Aqua Fit, Boxing Basics, Pilates Flow, Dance Cardio, Stretch and Relax, HIIT Circuit) | duration_min:20-120 capacity:5-60 difficulty{Beginner/Intermediate/Advanced} | trainer: taught by / teaching
class_attendance (attendance, check-in): - | event_date rating | gym_member: by / with; fitness_class: of / with | who attended / attended by
equipment_item (equipment, machine): product(Treadmill, Rower, Bike, Bench, Rack, Elliptical) | cost:200-20000 release_year:2005-2024 | gym: at / owning
membership_payment (payment, fee payment): - | amount:10-500 payment_date payment_method | gym_member: by / who made

== school_district
school: place(Elementary, High School, Academy, Middle School) | city founded_year:1880-2015 num_students:100-3000 school_type{Public/Private/Charter} | 
teacher (educator): person | subject{Math/English/Science/History/Art/Music/Sports} salary hire_date | school: teaching at / employing
pupil (student, learner): person | grade_level:1-12 birth_date gender | school: attending / attended by
exam (test, assessment): pool(Algebra Midterm, Reading Quiz, Science Fair, History Essay, Geometry Final, Spelling Test, Chemistry Lab, Poetry Project) | event_date max_score:20-100 | teacher: set by / setting
exam_result (result, mark): - | score | pupil: of / with; exam: in / with | who took / taken by
school_club (club, activity): pool(Chess Club, Robotics, Drama, Choir, Football Club, Debate, Art Club, Science Club) | meeting_day{Monday/Tuesday/Wednesday/Thursday/Friday} | teacher: led by / leading
club_membership (club membership): - | join_date | pupil: of / with; school_club: in / with | who joined / joined by

== software_projects
company (firm, employer): company(Labs, Software, Systems, Digital) | city founded_year:1975-2022 num_employees revenue | 
developer (programmer, engineer): person | seniority{Junior/Mid/Senior/Lead/Principal} salary hire_date language{Python/Java/Go/Rust/TypeScript/C++} | company: working at / employing
client (customer company): company(Bank, Retail, Health, Logistics) | industry{Finance/Retail/Healthcare/Transport/Energy} country |
project: pool(Apollo, Borealis, Cascade, Dynamo, Eclipse, Fathom, Glacier, Helix, Ion, Jupiter, Kestrel, Lumen, Mosaic, Nimbus, Orion, Pulsar, Quasar, Raven) | budget start_date project_status{Active/Completed/On Hold/Cancelled} | company: run by / running; client: for / commissioning
code_release (release, version): code(V, R, REL) | release_date num_commits:1-5000 | project: of / with
assignment (project assignment): - | hours:5-2000 start_date | developer: of / with; project: to / with | working on / staffed by
bug (issue, defect): code(BUG, ISS) | priority issue_date bug_status{Open/Fixed/Closed/In Progress} | project: in / with

== academic_conference
conference (venue, meeting): pool(ICLR, NeurIPS, ACL, CVPR, SIGMOD, VLDB, KDD, ICML, EMNLP, SIGIR, WWW, AAAI) | city event_year:2010-2024 attendance:200-15000 | 
paper (article, publication): title | num_citations:0-5000 pages:4-40 topic{Databases/Vision/Language/Learning/Systems/Theory} | conference: published at / publishing
researcher (author, scientist): person | institution{MIT/Stanford/ETH Zurich/Oxford/Tsinghua/KAIST/Toronto/EPFL} country h_index:1-120 | 
authorship (author credit): - | author_position:1-8 | researcher: of / with; paper: on / with | who wrote / written by
reviewer (referee): person | institution{MIT/Stanford/ETH Zurich/Oxford/Tsinghua/KAIST/Toronto/EPFL} years_experience | 
paper_review (review, report): - | score:1-10 event_date | paper: of / with; reviewer: by / who wrote | reviewed by / who reviewed

== farming
farm (ranch, estate): place(Farm, Ranch, Orchards, Acres) | region area:5-5000 founded_year:1850-2020 | 
farmer (grower): person | age years_experience phone | farm: working on / employing
crop (plant): pool(Wheat, Barley, Corn, Soybean, Rice, Potato, Tomato, Apple, Grape, Carrot, Oat, Lettuce) | crop_type{Grain/Vegetable/Fruit/Legume} growing_days:40-200 | 
harvest (yield, crop yield): - | event_year:2012-2024 tonnes:1-900 price:50-900 | farm: from / with; crop: of / with | which grew / grown on
livestock (animal, farm animal): code(COW, SHP, PIG, GT) | species{Cattle/Sheep/Pig/Goat/Chicken} weight:1-900 birth_date | farm: kept on / keeping

== shipping_ports
port (harbor, harbour): place(Port, Harbor, Terminal) | country capacity:1000-90000 | 
shipping_company (shipping line, carrier): company(Shipping, Lines, Maritime) | country founded_year | 
ship (vessel): pool(Aurora, Sea Falcon, Northern Star, Blue Horizon, Ocean Pearl, Iron Duke, Silver Wave, Coral Queen, Polar Spirit, Atlantic Dawn, Red Anchor, Golden Tide) | ship_type{Container/Tanker/Bulk Carrier/Ferry/Cruise} tonnage:1000-220000 release_year:1975-2023 | shipping_company: owned by / owning
captain (skipper, master): person | nationality years_experience age:30-70 | ship: commanding / commanded by
voyage (trip, sailing): - | start_date distance_km cargo_tons:0-200000 | ship: of / with; port: from / with | which sailed from / visited by
crew_member (sailor, seaman): person | nationality age:18-70 salary | ship: serving on / crewed by
port_fee (harbor fee, docking fee): - | amount:100-90000 payment_date | port: charged by / charging; shipping_company: paid by / paying

== railway
station (train station): place(Central, Junction, Station, Terminal) | city opening_year:1840-2020 platforms:1-30 | 
train: code(IC, RE, TGV, ICE, EX) | train_type{High Speed/Regional/Intercity/Night/Freight} max_speed:80-350 seats:0-900 release_year:1980-2024 | 
route (line, connection): code(L, R, S) | distance_km:5-1500 duration_min:10-900 | station: starting at / with
trip (journey, service): - | event_date delay_min:0-180 ticket_price:5-300 | train: run by / running; route: on / with | running on / served by
passenger (traveler, rider): person | age city email membership_level | 
ticket (fare): - | ticket_class{First/Second/Business/Economy} amount:5-300 payment_method | passenger: bought by / who bought; trip: for / with | traveling on / carrying

== elections
party (political party): pool(Green Party, Liberal Party, Labour Party, Conservative Party, Pirate Party, Centre Party, Social Democrats, Reform Party, Unity Party, Progress Party) | founded_year:1850-2020 ideology{Left/Centre-Left/Centre/Centre-Right/Right} num_members:1000-900000 | 
district (constituency, electoral district): place(North, South, East, West, Central, Valley) | population region | 
candidate (politician, nominee): person | age:25-80 gender occupation | party: from / fielding
election_result (result, vote count): - | votes:100-90000 vote_share:0-70 | candidate: of / with; district: in / with; election: in / with
campaign_donation (donation, contribution): - | amount:10-50000 payment_date | candidate: to / receiving
election (vote, poll): pool(General 2016, General 2020, General 2024, Local 2018, Local 2022, Regional 2019, Regional 2023, Referendum 2021) | event_date turnout:20-90 | 

== zoo
zoo (zoological park, wildlife park): place(Zoo, Wildlife Park, Safari Park) | city opening_year:1860-2020 area:5-400 ticket_price | 
enclosure (habitat, exhibit): code(EN, HB) | habitat{Savanna/Rainforest/Arctic/Desert/Aquatic/Mountain} area:50-40000 | zoo: in / with
animal (creature): pool(Leo, Nala, Kibo, Zuri, Tundra, Koko, Mango, Pepper, Luna, Raja, Bruno, Olive, Sheba, Tiko, Amara, Juno, Kito, Mila, Nuru, Sasha) | species{Lion/Elephant/Giraffe/Penguin/Gorilla/Tiger/Zebra/Polar Bear} gender birth_date weight:1-5000 | enclosure: living in / housing
zookeeper (keeper, caretaker): person | hire_date salary years_experience | zoo: working at / employing
feeding (feeding session): - | event_date food_kg:1-200 | animal: of / with; zookeeper: by / who did | fed by / who fed

== video_games
game_studio (developer, studio): company(Games, Interactive, Entertainment) | country founded_year:1975-2022 num_employees | 
video_game (game, title): title | game_genre{RPG/Shooter/Puzzle/Strategy/Sports/Platformer/Racing} release_date price:0-80 rating description | game_studio: developed by / that developed
platform (console, system): pool(PC, PlayStation 5, Xbox Series X, Nintendo Switch, PlayStation 4, Xbox One, iOS, Android, Steam Deck) | release_year:2005-2023 price:100-700 | 
game_release (release, port): - | release_date sales | video_game: of / with; platform: on / with | released on / offering
gamer (player, user): person | country age:12-65 join_date points | 
high_score (score, record): - | score:100-999999 event_date | gamer: by / who set; video_game: in / with | who played / played by

== theater
theater (theatre, playhouse): place(Theater, Playhouse, Opera House, Stage) | city capacity:80-3000 opening_year:1850-2020 | 
playwright (dramatist, writer): person | nationality birth_year:1850-1990 | 
play (stage play, production): title | genre{Tragedy/Comedy/Musical/Drama/Farce} event_year:1900-2024 duration_min:60-240 | playwright: written by / who wrote
stage_actor (actor, performer): person | gender age years_experience | 
show_run (run, staging): - | start_date end_date ticket_price attendance:500-200000 | theater: at / with; play: of / with | staging / staged at
casting (role, part): - | character_role{Lead/Supporting/Ensemble/Understudy} salary:500-90000 | stage_actor: of / with; play: in / with | who acted in / starring

== charity
charity (charitable organization, nonprofit): company(Foundation, Trust, Aid, Fund) | city founded_year cause{Health/Education/Environment/Animals/Poverty/Arts} | 
donor (giver, supporter): person | city age email join_date | 
donation (gift, contribution): - | amount payment_date payment_method | donor: from / who gave; charity: to / with | who donated to / funded by
campaign (fundraiser, drive): title | start_date amount:1000-900000 | charity: run by / running
volunteer (helper): person | age city join_date hours:1-2000 | charity: helping / helped by
fundraising_event (event, gala): title | event_date attendance:20-5000 amount:500-500000 | charity: organised by / organising
event_ticket (ticket, admission): - | amount:10-1000 payment_method | fundraising_event: for / with; donor: bought by / who bought | attended by / who attended

== pharmacy
pharmacy (drugstore, chemist): place(Pharmacy, Drugstore, Chemists) | city opening_year:1950-2023 is_24h | 
pharmacist (chemist, druggist): person | salary hire_date years_experience | pharmacy: working at / employing
drug_manufacturer (manufacturer, drug maker): company(Pharma, Labs, Biotech) | country founded_year | 
drug (medicine, medication): pool(Aspirin, Ibuprofen, Amoxicillin, Metformin, Omeprazole, Loratadine, Simvastatin, Naproxen, Cetirizine, Diclofenac, Ranitidine, Codeine, Fluoxetine, Zinc Tablets) | price:2-150 prescription_only dosage_mg:5-1000 | drug_manufacturer: made by / making
drug_sale (sale, dispensing): - | quantity event_date amount:2-600 | pharmacy: at / with; drug: of / with | selling / sold at
pharmacy_customer (customer, patient): person | birth_date city phone |
refill (prescription refill): - | event_date quantity:1-90 | pharmacy_customer: for / who received; drug: of / with | who refilled / refilled by

== manufacturing
factory (plant, works): place(Works, Plant, Factory, Mill) | city opening_year:1900-2022 num_employees:20-8000 | 
machine (machinery, equipment): code(MX, LT, CN, PR) | machine_type{Lathe/Press/Welder/Robot Arm/Conveyor/Cutter} release_year:1990-2024 max_output:10-5000 | factory: installed at / with
worker (operator, laborer): person | shift{Day/Night/Evening} hourly_rate hire_date | factory: working at / employing
component_part (part, component): product(Gear, Valve, Bracket, Spring, Bearing, Piston, Shaft, Bolt) | weight:1-120 cost:1-900 | 
production_run (batch, run): - | event_date quantity:10-10000 defect_rate:0-12 | machine: on / with; component_part: of / with | producing / produced on
parts_supplier (supplier, vendor): company(Metals, Components, Industrial) | country rating |
supply_contract (contract, supply deal): - | start_date amount:1000-900000 | parts_supplier: with / holding; component_part: for / with | supplying / supplied by

== city_services
district (neighborhood, borough): place(Heights, Park, Hill, Quarter, Side) | population area:100-9000 | 
public_park (park, green space): place(Park, Gardens, Commons, Green) | area:1-900 opening_year:1850-2023 has_playground description | district: in / containing
inspector (city inspector, officer): person | hire_date salary | 
inspection (check, visit): - | event_date score:40-100 notes | public_park: of / with; inspector: by / who did | inspected by / who inspected
complaint (report, grievance): - | issue_date complaint_type{Noise/Litter/Lighting/Graffiti/Safety/Parking} priority | district: from / with

== broadcasting
channel (TV channel, network): pool(Channel One, Metro TV, Sky Arts, Nova News, Sunrise Kids, Global Sport, Prime Cinema, Valley TV, Ocean HD, Retro Plus) | country founded_year:1950-2020 followers | 
tv_program (program, show): title | genre{News/Drama/Comedy/Documentary/Reality/Sports/Kids} release_year:1985-2024 rating | channel: on / airing
episode (installment): title | event_date duration_min:10-120 views | tv_program: of / with
presenter (host, anchor): person | age:22-75 nationality salary | 
hosting (presenting role): - | start_date | presenter: of / with; tv_program: on / with | who hosts / hosted by

== olympics
nation (country, team): pool(Kenya, Jamaica, Norway, Japan, Brazil, Canada, Italy, Australia, Germany, Korea, Spain, Netherlands, China, Ethiopia, Cuba, New Zealand) | population continent{Europe/Asia/Africa/Americas/Oceania} | 
athlete (competitor, sportsperson): person | gender birth_date height weight | nation: representing / represented by
sport (discipline): pool(Athletics, Swimming, Rowing, Cycling, Judo, Fencing, Gymnastics, Boxing, Sailing, Archery, Diving, Tennis) | is_team_sport | 
sport_event (event, competition): title | event_date venue_capacity:1000-80000 | sport: in / with
medal (award, prize): - | medal_type{Gold/Silver/Bronze} event_year:1996-2024 | athlete: won by / who won; sport_event: in / with | who medalled in / with medallist
olympic_venue (venue, arena): place(Arena, Stadium, Aquatics Centre, Velodrome) | city capacity:1000-90000 opening_year:1950-2024 |
coach (trainer, head coach): person | nationality years_experience | nation: coaching for / with

== food_delivery
eatery (restaurant, kitchen): place(Kitchen, Grill, Noodle Bar, Pizzeria, Diner) | cuisine{Italian/Chinese/Indian/Mexican/Burgers/Sushi/Vegan} rating city | 
courier (rider, driver): person | vehicle_type{Bike/Scooter/Car/On Foot} join_date rating | 
app_user (customer, user): person | city email join_date points | 
delivery_order (order, delivery): code(DL, OR) | order_date amount:5-200 delivery_min:10-120 | eatery: from / with; app_user: placed by / who placed; courier: delivered by / who delivered
menu_item (dish, item): product(Burger, Pizza, Noodles, Salad, Wrap, Curry, Taco, Soup) | price:3-45 calories is_vegetarian | eatery: sold by / selling

== veterinary
vet_clinic (clinic, animal hospital): place(Vet Clinic, Animal Hospital, Pet Care) | city opening_year:1960-2023 phone | 
veterinarian (vet, animal doctor): person | specialty{Surgery/Dentistry/Exotics/General/Dermatology} years_experience salary | vet_clinic: working at / employing
pet_owner (owner, client): person | city phone email | 
pet (animal, companion animal): pool(Max, Bella, Charlie, Lucy, Cooper, Daisy, Rocky, Molly, Milo, Coco, Buddy, Luna, Oscar, Ruby, Teddy, Nala, Simba, Lola, Ziggy, Pepper) | species{Dog/Cat/Rabbit/Parrot/Hamster/Turtle} birth_date weight:1-80 | pet_owner: owned by / owning
vet_visit (visit, checkup): - | visit_date fee diagnosis{Healthy/Infection/Injury/Allergy/Dental/Vaccination} | pet: of / with; veterinarian: with / who saw | who saw / seen by

== newspaper
newspaper (paper, daily): pool(Morning Herald, City Tribune, Daily Courier, Evening Post, Coastal Gazette, Weekly Observer, National Ledger, Valley Times) | founded_year:1800-2015 num_subscribers:1000-900000 language | 
journalist (reporter, writer): person | nationality hire_date salary | newspaper: writing for / employing
article (story, piece): title | section{Politics/Sports/Business/Culture/Science/World} event_date word_count:200-5000 views | journalist: written by / who wrote
editor: person | years_experience email | newspaper: at / employing
subscriber (reader): person | city join_date subscription_type{Print/Digital/Weekend/Full} | newspaper: subscribed to / with
photographer (photojournalist): person | hire_date years_experience | newspaper: working for / employing
photo (picture, image): title | event_date views | photographer: taken by / who took; article: in / with

== wine_cellar
region (wine region, appellation): pool(Bordeaux, Napa Valley, Rioja, Tuscany, Barossa, Mendoza, Douro, Mosel, Marlborough, Stellenbosch) | country area:100-120000 | 
winery (estate, vineyard): place(Estate, Vineyards, Cellars, Winery) | founded_year:1700-2020 num_employees:2-400 | region: located in / home to
wine: title | wine_color{Red/White/Rose/Sparkling} vintage:1985-2022 price:6-900 alcohol:10-16 | winery: made by / making
grape (grape variety): pool(Merlot, Chardonnay, Pinot Noir, Syrah, Riesling, Malbec, Tempranillo, Sauvignon Blanc, Grenache, Zinfandel) | grape_color{Red/White} | 
wine_grape (blend component): - | percentage:5-100 | wine: in / with; grape: of / in | made from / used in
tasting_note (review, tasting): - | score:50-100 event_date description | wine: of / with

== human_resources
office_location (office, site): place(Office, Campus, Tower, Hub) | city capacity:20-2000 opening_year:1960-2023 |
department (division, unit): pool(Sales, Marketing, Finance, Engineering, Support, Legal, Operations, Research, Design, Logistics) | budget | office_location: based at / housing
employee (staff member, worker): person | job_title{Analyst/Manager/Engineer/Clerk/Director/Specialist} salary hire_date birth_date email | department: in / employing
project (initiative): pool(Atlas, Beacon, Compass, Drift, Ember, Falcon, Granite, Harbor, Ignite, Juniper, Keystone, Lantern) | budget start_date end_date | department: run by / running
work_assignment (assignment, allocation): - | hours:5-1500 project_role{Lead/Member/Reviewer/Advisor} | employee: of / with; project: on / with | working on / staffed by
training_course (course, workshop): title | duration_min:30-960 cost:100-5000 | 
evaluation (performance review, appraisal): - | score:1-5 event_date notes | employee: of / with
training_record (training enrollment): - | event_date score:1-100 | employee: of / with; training_course: in / with | who took / taken by

== chess_club
chess_club (club): place(Chess Club, Knights, Rooks, Chess Circle) | city founded_year:1880-2020 num_members:5-600 | 
chess_player (player, competitor): person | elo:900-2850 birth_year:1950-2012 nationality title_level{GM/IM/FM/CM/None} | chess_club: member of / with
tournament (event, competition): title | start_date prize_money:500-500000 num_rounds:5-13 | 
tournament_entry (entry, participation): - | final_rank:1-200 points:0-13 | chess_player: of / with; tournament: in / with | who played in / featuring
chess_game (game, match): - | event_date num_moves:10-150 result{White wins/Black wins/Draw} | tournament: in / with

== parking
garage (parking garage, car park): place(Garage, Car Park, Parking) | city capacity:20-2000 opening_year:1950-2023 daily_rate:2-60 | 
parking_spot (space, bay): code(A, B, C, P) | floors:0-10 spot_type{Standard/Compact/Disabled/Electric/Motorcycle} | garage: in / with
driver (motorist, car owner): person | city birth_date phone | 
parking_permit (permit, pass): code(PM, PS) | start_date end_date fee | driver: held by / holding; garage: for / with
parking_violation (ticket, fine): - | issue_date fee:10-300 violation_type{Expired Meter/No Permit/Double Parking/Blocking Exit} | driver: issued to / who received; garage: at / with

== mountaineering
mountain (peak, summit): pool(Mont Blanc, Denali, Aconcagua, Kilimanjaro, Elbrus, Matterhorn, Annapurna, Vinson, Ararat, Rainier, Cook, Fuji, Kosciuszko, Olympus) | elevation:2000-8800 country range_name{Alps/Andes/Himalaya/Rockies/Caucasus/Other} | 
climber (mountaineer, alpinist): person | nationality birth_year:1940-2004 gender | 
expedition (climb, ascent): title | start_date budget:5000-900000 success | mountain: on / with; guide: led by / leading
expedition_member (team member, participant): - | member_role{Leader/Climber/Guide/Doctor} | climber: of / with; expedition: in / with | who joined / joined by
guide (mountain guide): person | years_experience hourly_rate country | 

== music_festival
festival (fair, event): title | city event_year:2005-2024 attendance:500-250000 ticket_price | 
band (act, group): pool(The Lanterns, Neon Tide, Paper Wolves, Velvet Echo, Copper Sky, The Drifters, Static Bloom, Hollow Pines, Glass Animals, Night Owls, Solar Flare, Iron Kites, Silver Foxes, Blue Harbor) | genre{Rock/Indie/Electronic/Pop/Metal/Folk/Jazz} country founded_year:1970-2022 | 
stage (festival stage): pool(Main Stage, Forest Stage, Tent Stage, Lake Stage, Dance Arena, Acoustic Corner) | capacity:200-60000 | festival: at / with
set_time (set, slot): - | duration_min:20-150 event_date | band: of / with; stage: on / with | who played on / featuring
vendor (stall, trader): company(Foods, Crafts, Merch, Drinks) | vendor_type{Food/Drinks/Merchandise/Crafts} rating | festival: selling at / with

== apartment_rental
building (apartment building, block): place(Towers, Court, House, Residences, Lofts) | city floors:2-45 opening_year:1900-2023 has_elevator | 
landlord (owner, property owner): person | phone email | 
apartment (flat, unit): code(APT, U, F) | bedrooms monthly_rent area:20-300 floors:0-45 | building: in / with; landlord: owned by / owning
tenant (renter, resident): person | occupation birth_date phone | 
lease (rental agreement, contract): - | start_date end_date monthly_rent | apartment: for / with; tenant: signed by / who signed | rented by / renting
maintenance_request (repair request, work order): - | issue_date priority cost:20-4000 description | apartment: for / with

== research_lab
lab (laboratory, research lab): pool(Quantum Lab, Genomics Lab, Robotics Lab, Climate Lab, Neuro Lab, Materials Lab, Vision Lab, Optics Lab) | city founded_year:1950-2022 budget | 
scientist (researcher, investigator): person | field{Physics/Biology/Chemistry/Computing/Medicine/Geology} h_index:1-150 hire_date | lab: working at / employing
funding_agency (funder, agency): company(Foundation, Council, Institute) | country | 
grant (research grant, award): code(GR, NSF, ERC) | amount:10000-5000000 start_date end_date | funding_agency: awarded by / awarding; lab: to / with
experiment (study, trial): title | start_date experiment_status{Planned/Running/Completed/Failed} cost | scientist: led by / leading
publication (paper, article): title | num_citations release_year:1990-2024 | scientist: written by / who wrote
equipment/equipment (instrument, device): product(Microscope, Sequencer, Laser, Spectrometer, Centrifuge, Incubator) | cost:1000-900000 release_year:1995-2024 | lab: in / owning

== social_network
social_user (user, member): person | country age:13-80 join_date followers is_verified | 
post (message, update): - | event_date views likes:0-90000 description | social_user: written by / who wrote
group (community, forum): pool(Runners Club, Book Lovers, Home Cooks, Indie Devs, Film Buffs, Plant Parents, Chess Fans, Travel Tales, Photo Walks, Retro Gamers) | founded_year:2005-2024 num_members:10-500000 is_public | 
membership (group membership): - | join_date member_role{Admin/Moderator/Member} | social_user: of / with; group: in / with | who joined / joined by

== dog_kennels
kennel (boarding kennel, dog hotel): place(Kennels, Dog Hotel, Pet Lodge) | city capacity:5-200 daily_rate:10-120 | 
dog_owner (owner): person | city phone email | 
dog (canine, pup): pool(Rex, Bella, Bailey, Max, Duke, Sadie, Tucker, Maggie, Bear, Zoe, Jack, Penny, Murphy, Rosie, Winston, Lady, Hank, Ginger, Louie, Dixie) | breed{Labrador/Beagle/Poodle/Bulldog/Husky/Boxer/Terrier} birth_date weight:2-90 gender | dog_owner: owned by / owning
kennel_stay (stay, boarding): - | start_date end_date amount:20-3000 | dog: of / with; kennel: at / with | who stayed at / hosting
treatment (vet treatment, procedure): - | event_date cost:20-900 treatment_type{Vaccination/Grooming/Checkup/Surgery/Dental} | dog: given to / who received

== world_geography
country_info (country, nation): pool(Argentina, Australia, Austria, Brazil, Canada, Chile, Egypt, Finland, France, Germany, Ghana, India, Japan, Kenya, Mexico, Norway, Peru, Poland, Portugal, Spain, Sweden, Turkey, Vietnam) | continent{Europe/Asia/Africa/Americas/Oceania} population area:1000-9000000 gnp:100-9000000 government_form{Republic/Monarchy/Federal Republic/Constitutional Monarchy} independence_year:1500-1990 | 
city_info (city, town): pool(Oslo, Lima, Accra, Perth, Osaka, Porto, Lyon, Graz, Cusco, Mombasa, Izmir, Hue, Bergen, Krakow, Seville, Kyoto, Quebec, Cairo, Pune, Turku) | population district_name{Capital/Coastal/Northern/Southern/Central} | country_info: in / with
spoken_language (language spoken, country language): - | is_official percentage:1-100 | country_info: of / with; language_info: of / with | speaking / spoken in
language_info (language): pool(English, Spanish, French, German, Arabic, Portuguese, Japanese, Swahili, Turkish, Polish, Finnish, Quechua) | language_family{Indo-European/Afro-Asiatic/Japonic/Niger-Congo/Turkic/Uralic/Quechuan} num_speakers:1000000-1500000000 | 

== tennis_tour
tennis_player (player): person | country birth_date height hand{Right/Left} ranking_points:0-12000 | 
tournament (event): place(Open, Masters, Classic, Cup) | city surface{Hard/Clay/Grass/Carpet} prize_money:100000-9000000 tour_level{Grand Slam/Masters/ATP 500/ATP 250} | 
tennis_match (match): - | event_date duration_min:40-300 match_round{Final/Semifinal/Quarterfinal/R16/R32} | tournament: in / with; tennis_player: won by / who won
player_ranking (ranking, rank): - | event_date ranking:1-500 ranking_points:0-12000 | tennis_player: of / with

== battle_history
battle (engagement, conflict): pool(Battle of Aldmere, Battle of Brennick, Siege of Corvale, Battle of Dunmore, Battle of Elsworth, Siege of Falkreach, Battle of Greymoor, Battle of Halden, Siege of Ironvale, Battle of Jorvik, Battle of Kestrel Bay, Battle of Lowmarsh) | event_year:1200-1900 result{Victory/Defeat/Draw} | 
commander (general, leader): person | nationality birth_year:1150-1880 | battle: who led / led by
ship (warship, vessel): pool(Valiant, Dauntless, Resolute, Invincible, Audacious, Relentless, Vigilant, Formidable, Intrepid, Steadfast, Defiant, Tenacious) | ship_type{Frigate/Galleon/Brig/Schooner/Man-of-war} tonnage:100-4000 | battle: lost in / with
casualty_report (death report, losses): - | killed:0-5000 injured:0-9000 | ship: of / with; battle: in / with | lost in / costing

== document_management
document_type (type, category): pool(Invoice, Contract, Report, Memo, Letter, Manual, Policy, Receipt, Proposal, Form) | description | 
document (file, record): title | issue_date num_pages:1-400 access_count:0-20000 | document_type: of type / with
template (document template): code(TPL, T) | version_number:1-12 start_date | document_type: for / with
paragraph (section, passage): - | word_count:10-900 notes | document: in / with
document_owner (author, owner): person | email join_date | 
ownership (document ownership): - | start_date | document_owner: of / with; document: of / with | owning / owned by

== orchestra_music
conductor (maestro): person | nationality age:25-90 years_experience | 
orchestra (ensemble, symphony): place(Philharmonic, Symphony, Chamber Orchestra, Ensemble) | founded_year:1800-2020 record_company{Decca/Sony Classical/Naxos/EMI/Chandos} | conductor: led by / leading
orchestra_concert (concert, performance): title | event_date attendance:100-20000 ticket_price | orchestra: given by / giving
musician (instrumentalist, player): person | instrument{Violin/Cello/Flute/Oboe/Trumpet/Piano/Harp/Viola} age:18-80 salary | orchestra: playing in / with
recording (album, release): title | release_year:1950-2024 sales | orchestra: by / which recorded
composer: person | nationality birth_year:1650-1990 |
program_piece (programme item, piece performed): - | duration_min:5-90 | orchestra_concert: in / with; composer: by / with | featuring works by / performed in

== poker_tour
poker_player (player, card player): person | nationality birth_date earnings:0-9000000 best_finish:1-100 | 
poker_tournament (tournament, event): title | event_date buy_in:100-100000 prize_pool:10000-90000000 | casino: held at / hosting
poker_result (result, finish): - | final_place:1-500 winnings:0-9000000 | poker_player: of / with; poker_tournament: in / with | who played in / featuring
casino (card room, venue): place(Casino, Card Club, Grand) | city opening_year:1920-2023 num_tables:5-300 | 
"""


@dataclass(frozen=True)
class Reference:
    parent: str  # entity name of the parent
    child_to_parent: str  # "working at": doctors working at the hospital ...
    parent_to_child: str  # "employing": hospitals employing doctors ...


@dataclass(frozen=True)
class Entity:
    name: str  # words joined by "_", e.g. "crew_assignment"
    plural: str
    synonyms: tuple[str, ...]  # other nouns for it in questions, singular
    label: Label | None
    attributes: tuple[Attribute, ...]
    references: tuple[Reference, ...]
    link_verbs: tuple[str, str] | None  # (a-to-b, b-to-a) for an entity linking two others

    @property
    def noun(self) -> str:
        return self.name.replace("_", " ")


@dataclass(frozen=True)
class Domain:
    name: str
    entities: tuple[Entity, ...]

    def entity(self, name: str) -> Entity:
        return next(e for e in self.entities if e.name == name)


_ATTR = re.compile(r"(\w+)(\{[^}]*\}|:[\d.]+-[\d.]+)?")
_ENTITY = re.compile(r"^(\w+)(?:/(\w+))?\s*(?:\(([^)]*)\))?$")
_LABEL = re.compile(r"^(\w+)(?:\((.*)\))?$")


def pluralize(word: str) -> str:
    """"city" -> "cities", "work of art" -> "works of art", "staff member" -> "staff members"."""
    if " of " in word:
        head, _, tail = word.partition(" of ")
        return pluralize(head) + " of " + tail
    if " " in word:
        head, _, last = word.rpartition(" ")
        return head + " " + pluralize(last)
    if word.endswith("y") and word[-2:-1] not in tuple("aeiou"):
        return word[:-1] + "ies"
    if word.endswith(("s", "x", "ch", "sh")):
        return word + "es"
    return word + "s"


def _attributes(text: str, where: str) -> tuple[Attribute, ...]:
    out = []
    for key, extra in _ATTR.findall(text):
        if extra.startswith("{"):
            out.append(cat(key, extra[1:-1]))
        elif key not in ATTRIBUTES:
            raise ValueError(f"{where}: unknown attribute {key!r}")
        elif extra:
            low, high = extra[1:].split("-")
            out.append(ATTRIBUTES[key].with_range(float(low), float(high)))
        else:
            out.append(ATTRIBUTES[key])
    return tuple(out)


def _references(text: str) -> tuple[Reference, ...]:
    refs = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        parent, wording = part.split(":", 1)
        c2p, _, p2c = (w.strip() for w in wording.partition("/"))
        refs.append(Reference(parent.strip(), c2p, p2c or "with"))
    return tuple(refs)


def _entity(line: str, where: str) -> Entity:
    head, body = line.split(":", 1)
    fields = [f.strip() for f in body.split("|")] + [""] * 3
    if not _ENTITY.match(head.strip()):
        raise ValueError(f"{where}: cannot read the entity {head.strip()!r}")
    name, plural, synonyms = _ENTITY.match(head.strip()).groups()
    spec, args = _LABEL.match(fields[0]).groups() if fields[0] != "-" else (None, None)
    lab = label(spec, tuple(a.strip() for a in args.split(","))) if spec and args else label(spec, ()) if spec else None
    verbs = tuple(v.strip() for v in fields[3].split("/")) if fields[3] else None
    return Entity(
        name=name,
        plural=(plural or pluralize(name.replace("_", " "))).replace("_", " "),
        synonyms=tuple(s.strip() for s in synonyms.split(",")) if synonyms else (),
        label=lab,
        attributes=_attributes(fields[1], f"{where}.{name}"),
        references=_references(fields[2]),
        link_verbs=verbs,
    )


def parse_domains(text: str) -> tuple[Domain, ...]:
    domains, name, lines = [], None, []
    for raw in text.strip().splitlines() + ["== end"]:
        line = raw.strip()
        if line.startswith("== "):
            if name:
                domains.append(Domain(name, tuple(_entity(entry, name) for entry in lines)))
            name, lines = line[3:].strip(), []
        elif line:
            lines.append(line)
    for d in domains:  # every reference names an entity of its own domain
        names = {e.name for e in d.entities}
        for e in d.entities:
            for r in e.references:
                if r.parent not in names:
                    raise ValueError(f"{d.name}.{e.name}: unknown parent {r.parent!r}")
    return tuple(domains)


DOMAINS: tuple[Domain, ...] = parse_domains(DOMAINS_TEXT)
