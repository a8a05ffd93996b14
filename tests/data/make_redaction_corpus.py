# ruff: noqa: E501  (hand-written records are long lines on purpose)
"""Generate tests/data/redaction_corpus.jsonl from hand-written marked-up records.

Markup: ⟦TYPE|value⟧ marks a labelled span; offsets are computed here, so they
are right by construction. Run: python tests/data/make_redaction_corpus.py
All values are fake: documentation/test card numbers, example IBANs,
example.com addresses, documentation IP ranges, 555-01xx phone numbers.
"""
from __future__ import annotations

import json
import random
import re
from pathlib import Path

OUT = Path(__file__).with_name("redaction_corpus.jsonl")
ALIAS = {
    "E": "EMAIL_ADDRESS", "P": "PHONE_NUMBER", "C": "CREDIT_CARD", "I": "IBAN_CODE", "IP": "IP_ADDRESS",
    "U": "URL_CREDENTIALS", "S": "SECRET", "$": "PRICE", "T": "COMMERCIAL_TERM",
}
TERMS = [
    ["Acme Industrial", "SUPPLIER"], ["Northwind Traders", "SUPPLIER"], ["Globex", "SUPPLIER"],
    ["Initech", "CUSTOMER"], ["Umbrella Retail", "CUSTOMER"], ["Stark Logistics", "CUSTOMER"],
    ["Project Falcon", "INTERNAL_CODENAME"], ["Bluebird", "INTERNAL_CODENAME"],
]
_MARK = re.compile(r"⟦([A-Z$_]+)\|(.*?)⟧", re.S)

# (id prefix, marked-up text). Records with a term type get the TERMS list.
RECORDS: list[tuple[str, str]] = [
    # ---------------------------------------------------------------- product copy
    ("product", "The Aurora desk lamp ships in matte black and brushed brass. Launch price ⟦$|$49.99⟧, dropping to ⟦$|$44.99⟧ for orders over 10 units."),
    ("product", "Organic cotton tote, 38 x 42 cm, 180 gsm. Retail ⟦$|€12,50⟧; wholesale ⟦$|€6.20/unit⟧ with a ⟦T|MOQ of 250 units⟧."),
    ("product", "Stainless steel water bottle, 750 ml, keeps drinks cold for 24 hours. Available in 6 colours. RRP ⟦$|£18⟧."),
    ("product", "Pro plan: ⟦$|$29 per user⟧ billed monthly, or ⟦$|$290 a year⟧. Enterprise pricing ⟦$|$40-$55⟧ depending on seat count."),
    ("product", "Ceramic mug set (4 pcs), dishwasher safe, 350 ml each. Launch offer ⟦T|15% off⟧ until Sunday."),
    ("product", "Hand-poured soy candle, 40-hour burn time, cedar and bergamot. ⟦$|USD 24⟧ incl. gift box."),
    ("product", "Bamboo cutting board, 45 x 30 cm, model BB-4530. Made in Vietnam. No assembly required."),
    ("product", "Noise-cancelling headphones, 30 h battery, USB-C charging, firmware 2.4.1. Price: ⟦$|1.299,00 EUR⟧."),
    ("product", "Trail running shoe, 8 mm drop, 280 g (size 42). Distributor price ⟦$|€38 to €42 per pair⟧ depending on volume."),
    ("product", "Premium olive oil, 500 ml bottle, cold pressed, harvest 2023. Export price ⟦$|EUR 7.80/bottle⟧ ex works."),
    ("product", "Merino base layer, 200 gsm, sizes XS-XXL, SKU ML-200-NVY-M. Wholesale ⟦$|$32.50 each⟧."),
    ("product", "Smart thermostat with 3.5 inch display, Wi-Fi and Matter support, version 3.1.0 app. ⟦$|¥12,800⟧ in Japan."),
    ("product", "Recycled paper notebooks, A5, 96 pages, dot grid. Case of 24 at ⟦$|$3 per unit⟧, ⟦T|MOQ 500 units⟧."),
    ("product", "LED panel 60x60, 40 W, 4000 K, 120 lm/W, 5-year warranty. Trade price ⟦$|£21.40⟧."),
    ("product", "Cordless drill kit, 18 V, two 2.0 Ah batteries, 50 Nm torque. EAN 4006381333931."),
    ("product", "Kids' rain jacket, fully taped seams, reflective trim. Sizes 98-140. Colour: sunflower yellow."),
    ("product", "Espresso beans, single origin Colombia, 1 kg bag. Café price ⟦$|€19.90/kg⟧, subscription ⟦T|10% discount⟧."),
    ("product", "Yoga mat, 6 mm, natural rubber, 183 x 61 cm, 2.5 kg. Our bestseller since 2019."),
    ("product", "Wireless charger 15 W, Qi2 certified. List ⟦$|$39⟧, partner ⟦$|$26⟧ after ⟦T|33% reseller discount⟧."),
    ("product", "Industrial shelving unit, 5 shelves, 200 kg per shelf load, 180 x 90 x 45 cm. Ref. SH-5-180."),
    ("product", "Leather wallet, RFID blocking, 8 card slots. Price on request; samples ⟦$|$15 each⟧ + shipping."),
    ("product", "Sparkling water, 330 ml cans, 24-pack. Supermarket price ⟦$|A$18.50⟧, on promotion from 1 June."),
    ("product", "Glass food containers, set of 5, BPA free, oven safe to 450 °F. Pack weight 3.2 kg."),
    # ---------------------------------------------------------------- supplier e-mails
    ("supplier_email", "Hi Tom,\nthanks for the call. As agreed, unit price is ⟦$|$4.20/unit⟧ for the first 10k, payment ⟦T|net 60⟧. Please send the PO to ⟦E|orders@northwind.example⟧.\nBest, Priya"),
    ("supplier_email", "Dear Ms. Keller,\nplease find our revised quote attached: ⟦$|€2.15 per piece⟧, ⟦T|minimum order quantity of 5,000 pieces⟧, terms ⟦T|2/10 net 30⟧. Bank details: IBAN ⟦I|DE89 3704 0044 0532 0130 00⟧.\nKind regards,\nJonas Weber\n⟦P|+49 30 901820⟧"),
    ("supplier_email", "Hello, our new remittance account is ⟦I|GB82 WEST 1234 5698 7654 32⟧ (sort code change from 1 March). Queries to ⟦E|ar@acme-industrial.example⟧ or ⟦P|+44 20 7946 0958⟧."),
    ("supplier_email", "Hi team, ⟦SUPPLIER|Acme Industrial⟧ can do ⟦$|$11.80/kg⟧ if we commit to 20 tonnes per quarter. They also offered a ⟦T|3% volume rebate⟧ above 100 tonnes."),
    ("supplier_email", "Marco,\nfollowing up on the freight question: we can hold ⟦$|USD 1,850 per container⟧ until end of month. Call me on ⟦P|+39 06 1234 5678⟧.\nCiao, Elena (⟦E|elena.bruno@example.it⟧)"),
    ("supplier_email", "Good morning,\n⟦SUPPLIER|Globex⟧ confirms ⟦T|Net-45⟧ payment terms and an ⟦T|exclusive distributor for the Nordics⟧ arrangement, subject to legal review.\nRegards, Procurement"),
    ("supplier_email", "Dear buyer, please update your records: remit to ⟦I|FR14 2004 1010 0505 0001 3M02 606⟧, BIC PSSTFRPPPAR. Invoice INV-2024-00871 remains due in 30 days."),
    ("supplier_email", "Hi Sam,\nprice increase notice: from 1 July resin pellets move from ⟦$|$1,450⟧ to ⟦$|$1,590 per tonne⟧. Contract C-7781 stays valid.\nThanks, ⟦E|sam.lee@globex.example⟧"),
    ("supplier_email", "Quote #Q-5521: 2,000 cartons at ⟦$|£0.82 each⟧, delivery week 34, ⟦T|net 30⟧. Contact: ⟦P|+44 161 496 0000⟧."),
    ("supplier_email", "Hey, quick one: can you pay the deposit (⟦$|$12,000⟧) by card? We accept Visa and Mastercard. Do not email card numbers, use the portal."),
    ("supplier_email", "Please charge our corporate card ⟦C|5555 5555 5555 4444⟧ for the samples, total ⟦$|$386.40⟧. Billing contact ⟦E|finance@initech.example⟧."),
    ("supplier_email", "Hola Ana, the ⟦T|exclusivity until 2027⟧ is fine for us if the ⟦T|MOQ 1,200 units⟧ per month is met. Tel. ⟦P|+34 912 345 678⟧."),
    ("supplier_email", "Dear partner, our bank details changed. New IBAN: ⟦I|NL91ABNA0417164300⟧. Old account NL91 ABNA 0417 1643 01 is closed."),
    ("supplier_email", "Hi, we offer ⟦T|2% early-payment discount⟧ if paid within 10 days, otherwise ⟦T|net 30 days⟧. Rates: ⟦$|CHF 58.00/hour⟧ for engineering support."),
    ("supplier_email", "Attached is the signed NDA. For logistics, please reach Kenji at ⟦P|+81 3-1234-5678⟧ or ⟦E|kenji.sato@example.jp⟧."),
    ("supplier_email", "Thanks for visiting our plant. Summary: tooling ⟦$|€18,500⟧ one-off, unit price ⟦$|€0.74⟧, lead time 6 weeks, ⟦T|exclusive supplier in North America⟧ until the tooling is amortised."),
    ("supplier_email", "Re: invoice 100234567 – payment was sent to ⟦I|ES91 2100 0418 4502 0005 1332⟧ on 12.03.2024, ref PO-2024-001234."),
    ("supplier_email", "Hi Lena, ⟦SUPPLIER|Northwind Traders⟧ wants payment terms of ⟦T|net 90⟧? No way, max ⟦T|net 60⟧. Their rep: ⟦P|(312) 555-0176⟧."),
    ("supplier_email", "Dear all, the account manager for ⟦CUSTOMER|Umbrella Retail⟧ is now Raj (⟦E|raj.patel@example.com⟧, ⟦P|+1 646 555 0147⟧)."),
    ("supplier_email", "Bonjour, merci pour la commande. Montant: ⟦$|4 250,00 €⟧. Virement sur ⟦I|FR14 2004 1010 0505 0001 3M02 606⟧ svp."),
    ("supplier_email", "Hi, the sample invoice is ⟦$|$75⟧ and we waive it for orders above ⟦$|$5k⟧. Tracking: 1Z999AA10123456784."),
    ("supplier_email", "Dear procurement, we confirm a ⟦T|markup of 18%⟧ on landed cost and ⟦T|commission of 4.5%⟧ for the agent."),
    ("supplier_email", "Please wire ⟦$|CHF 9,800⟧ to ⟦I|CH93 0076 2011 6238 5295 7⟧ before dispatch. Ref: Order 55123."),
    ("supplier_email", "Morning! The PDF price list has a typo: row 14 should read ⟦$|$18.75⟧ not ⟦$|$81.75⟧. Sorry for the confusion. Version 1.3 attached."),
    ("supplier_email", "Hi Chris, our Polish entity will invoice from now on: ⟦I|PL61 1090 1014 0000 0712 1981 2874⟧. VAT ID PL5261040828."),
    # ---------------------------------------------------------------- internal notes
    ("internal_note", "Internal: ⟦INTERNAL_CODENAME|Project Falcon⟧ target landed cost ⟦$|$6.10⟧, sell at ⟦$|$14.99⟧ for a ⟦T|gross margin of 59%⟧. Do not share with ⟦CUSTOMER|Initech⟧."),
    ("internal_note", "Negotiation notes: opening ⟦$|€3.40⟧, walk-away ⟦$|€3.95⟧. They asked for ⟦T|net 90⟧; we counter with ⟦T|net 45⟧ plus ⟦T|1.5% rebate⟧ at 50k units."),
    ("internal_note", "⟦INTERNAL_CODENAME|Bluebird⟧ launch slipped to Q3. Budget remains ⟦$|USD 250k⟧. Team lead: ⟦E|m.ortiz@example.com⟧."),
    ("internal_note", "Pricing committee decided: floor ⟦$|$9.50/unit⟧, list ⟦$|$12⟧, max ⟦T|20% discount⟧ without VP approval."),
    ("internal_note", "Reminder: the ⟦T|exclusive distribution agreement for Germany and Austria⟧ renews automatically unless cancelled 90 days prior."),
    ("internal_note", "Competitor sells the same SKU at ⟦$|£7.99⟧ in Tesco. We are at ⟦$|£8.49⟧. Suggest matching for 4 weeks."),
    ("internal_note", "Freight quote from ⟦SUPPLIER|Globex⟧ Logistics: ⟦$|$2,300-$2,650⟧ per 40ft container Shanghai–Rotterdam, valid 14 days."),
    ("internal_note", "Q2 review: revenue up 12% QoQ, headcount 48, churn 2.1%. Nothing to escalate."),
    ("internal_note", "For ⟦CUSTOMER|Stark Logistics⟧ we agreed ⟦T|exclusivity through Q4 2026⟧ and a ⟦T|5% loyalty rebate⟧."),
    ("internal_note", "Costing v2: materials ⟦$|$3.12⟧, labour ⟦$|$0.88⟧, overhead ⟦$|$0.40⟧ -> total ⟦$|$4.40⟧. ⟦T|Target markup at 45%⟧."),
    ("internal_note", "The supplier wants a ⟦T|minimum order of 300 cartons⟧ and ⟦T|Net 30⟧; finance prefers ⟦T|net 60⟧."),
    ("internal_note", "Meeting moved to 14:30 in room 4.12. Please bring the printed deck (v3.2) and the signed NDA."),
    ("internal_note", "Heads-up: ⟦CUSTOMER|Umbrella Retail⟧ is asking for a ⟦T|12% rebate⟧ on all 2025 volume; current deal is ⟦T|8% rebate⟧."),
    ("internal_note", "Budget for trade show: ⟦$|€15,000⟧ booth + ⟦$|€4,500⟧ travel. Approved by CFO on 2024-02-01."),
    ("internal_note", "⟦INTERNAL_CODENAME|Project Falcon⟧ BOM is frozen at rev C. Open issue: connector supplier lead time 16 weeks."),
    ("internal_note", "Price war alert: ⟦SUPPLIER|Northwind Traders⟧ dropped to ⟦$|$0.95 per bottle⟧. Our ⟦T|margin of 22%⟧ would go to 9% if we match."),
    ("internal_note", "Contract draft: ⟦T|exclusivity period of 3 years⟧, renewal by mutual consent, ⟦T|MOQ: 10,000 pcs⟧ per year."),
    ("internal_note", "We lost the ⟦CUSTOMER|Initech⟧-style deal because of price, not quality. 3 of 5 lost deals in March cited price."),
    ("internal_note", "Rebate table: tier 1 ⟦T|2% rebate⟧, tier 2 ⟦T|3.5% rebate⟧, tier 3 ⟦T|5% rebate⟧. Paid annually in January."),
    ("internal_note", "Shipping estimate ⟦$|$12-15/kg⟧ by air vs ⟦$|$2.10/kg⟧ by sea. Sea is 5 weeks."),
    # ---------------------------------------------------------------- CRM notes
    ("crm", "Called Sarah Nguyen (buyer) on ⟦P|(201) 555-0123⟧, she wants a quote by Friday. Email: ⟦E|sarah.nguyen@example.com⟧."),
    ("crm", "Lead from trade show: Tomás Ruiz, Head of Purchasing, ⟦P|+34 912 345 678⟧, ⟦E|t.ruiz@example.es⟧. Interested in 5k units/month."),
    ("crm", "Follow-up: left voicemail at ⟦P|415.555.0132⟧. Try again Tuesday after 10am PT."),
    ("crm", "Customer ⟦CUSTOMER|Initech⟧ switched billing contact to ⟦E|ap@initech.example⟧; phone ⟦P|+1 (212) 555-0199⟧."),
    ("crm", "Meeting notes 2024-05-14: Jane (⟦E|jane.doe@example.com⟧) confirmed budget of ⟦$|$80,000⟧ for FY25."),
    ("crm", "Ticket #100234567: customer cannot log in after password reset. Escalated to tier 2."),
    ("crm", "Spoke with Dr. Müller, mobile ⟦P|+49 89 636 48018⟧. Prefers German-language docs. Birthday irrelevant, skip."),
    ("crm", "New contact: Aisha Khan <⟦E|aisha.khan@northwind.example⟧>, direct ⟦P|713-555-0181⟧, assistant ⟦P|713-555-0182⟧."),
    ("crm", "Customer paid with card ending 4444; full number never stored. Receipt sent."),
    ("crm", "Account 88213 moved to enterprise tier. Renewal date 2025-03-31. NPS 9."),
    ("crm", "Contact us: ⟦E|support@example.org⟧ or ⟦P|+1 800 555 0199⟧ (toll free)."),
    ("crm", "Olivia from ⟦CUSTOMER|Stark Logistics⟧ asked for a call at ⟦P|+61 2 9374 4000⟧ at 9am Sydney time."),
    ("crm", "Duplicate record merged: ⟦E|J.Smith+orders@example.co.uk⟧ and ⟦E|j.smith@example.co.uk⟧ are the same person."),
    ("crm", "Prospect in Amsterdam: ⟦P|+31 20 123 4567⟧, speaks English. Budget unknown."),
    ("crm", "Called 3 times, no answer. Will email next week. Ref case 2024-0412."),
    ("crm", "VIP customer – ⟦P|+44 7911 123456⟧ (WhatsApp preferred), ⟦E|vip.client@example.co.uk⟧."),
    ("crm", "Customer read their card number over the phone: ⟦C|4111 1111 1111 1111⟧, exp 09/27. Agent reminded them not to."),
    ("crm", "Quote sent: 1,000 units at ⟦$|$17.25⟧, valid until 30 June. Decision maker: ⟦E|cfo@umbrella-retail.example⟧."),
    ("crm", "Phone: ⟦P|617.555.0142⟧ | Fax: ⟦P|+1-617-555-0110⟧ | Web: www.example.com"),
    ("crm", "Demo done. They run 1.2.3 of our app, need upgrade to 2.0. Call back number ⟦P|+46 8 123 456 78⟧."),
    ("crm", "Lukas (Vienna) prefers bank transfer to ⟦I|AT61 1904 3002 3457 3201⟧; phone ⟦P|+43 1 5123456⟧."),
    # ---------------------------------------------------------------- config / secrets
    ("config", "DATABASE_URL=postgres://⟦U|app_user:Xq93!fPz⟧@db.internal.example:5432/sluice\nREDIS_URL=redis://cache.internal.example:6379/0"),
    ("config", "[default]\naws_access_key_id = ⟦S|AKIAIOSFODNN7EXAMPLE⟧\naws_secret_access_key = ⟦S|wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY⟧\nregion = eu-west-1"),
    ("config", "STRIPE_SECRET_KEY=⟦S|sk_live_51HxQz2ExampleKeyDoNotUse9876⟧\nSTRIPE_PUBLISHABLE_KEY=pk_test_placeholder"),
    ("config", "curl -H \"Authorization: Bearer ⟦S|eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U⟧\" https://api.example.com/v1/orders"),
    ("config", "git remote add origin https://⟦U|deploy:Tr0ub4dor3⟧@git.example.com/team/app.git"),
    ("config", "export GITHUB_TOKEN=⟦S|ghp_R2d2C3poExampleToken0123456789abcdEF⟧"),
    ("config", "slack:\n  bot_token: ⟦S|xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx⟧\n  channel: \"#alerts\""),
    ("config", "ANTHROPIC_API_KEY=⟦S|sk-ant-api03-Ex4mpleKeyOnly_abcdefghijklmnopqrstuvwxyz012345⟧"),
    ("config", "OPENAI_API_KEY=⟦S|sk-proj-Ex4mple0nlyKey_1234567890abcdefABCDEF⟧\nMODEL=gpt-4o-mini\nMAX_TOKENS=1024"),
    ("config", "db:\n  host: ⟦IP|10.20.30.40⟧\n  user: reporting\n  password: ⟦S|R3p0rt!ng2024⟧\n  port: 5432"),
    ("config", "{\"username\": \"svc-export\", \"password\": \"⟦S|N0t-So-Secret-99⟧\", \"timeout\": 30}"),
    ("config", "api_key: ${API_KEY}\npassword: <redacted>\ntoken: \"\"  # set via environment"),
    ("config", "# How to log in: enter your password in the password field and click Sign in.\n# Forgot password? Contact IT."),
    ("config", "upstream backend {\n  server ⟦IP|192.168.10.21⟧:8080;\n  server ⟦IP|192.168.10.22⟧:8080;\n}"),
    ("config", "listen [⟦IP|2001:db8::8a2e:370:7334⟧]:443 ssl;\nserver_name shop.example.com;"),
    ("config", "MYSQL_ROOT_PASSWORD=⟦S|hunter2hunter2⟧\nMYSQL_DATABASE=shop\nMYSQL_USER=shop"),
    ("config", "headers = {\"Authorization\": \"Bearer ⟦S|a1B2c3D4e5F6g7H8i9J0kLmN⟧\", \"Accept\": \"application/json\"}"),
    ("config", "amqp_url: amqp://⟦U|guest:gu3stPw⟧@mq.example.net:5672/vhost\nprefetch: 10"),
    ("config", "client_secret=⟦S|9f8e7d6c5b4a39281706f5e4d3c2b1a0⟧&grant_type=client_credentials"),
    ("config", "requirements: Django==5.0.6, psycopg==3.1.19, gunicorn==22.0.0 (python 3.11.7)"),
    ("config", "GOOGLE_MAPS_KEY=⟦S|AIzaSyA1234567890abcdefghijklmnopqrstuv⟧"),
    ("config", "login with passwd: ⟦S|s3cr3t!⟧ then run migrations; ssh to ⟦IP|203.0.113.7⟧ as deploy."),
    ("config", "The service rotates its token every 24 hours; the token itself lives in Vault under secret/app."),
    ("config", "gitlab_token = \"⟦S|glpat-Ex4mpleT0kenOnly12345⟧\""),
    ("config", "redis://⟦U|:p4ssw0rdR3dis⟧@cache.example.org:6379/1 is the cache; fallback at ⟦IP|198.51.100.23⟧."),
    ("config", "Set SECRET_KEY=⟦S|django-insecure-7f#k2@x!9q$w^e3r5t⟧ only in development."),
    ("config", "ipv6 gateway ⟦IP|fe80::1ff:fe23:4567:890a⟧, dns ⟦IP|2001:db8:0:1::53⟧, mac 00:1A:2B:3C:4D:5E"),
    # ---------------------------------------------------------------- hard negatives
    ("negative", "Order PO-2024-001234 shipped on 2024-01-15 via DHL, tracking 1Z999AA10123456784."),
    ("negative", "Event timestamp 1700000000000 (ms) and 1700000000 (s) both refer to 14 Nov 2023."),
    ("negative", "Barcodes: EAN 4006381333931, EAN 5901234123457, UPC 036000291452."),
    ("negative", "SKU-44-1209-BLK and AB-1234-5678-CD are internal item codes, not card numbers."),
    ("negative", "Release notes for v1.2.3: fixed login bug. Next version 2.10.4.1 due in May."),
    ("negative", "Test card 4111 1111 1111 1112 fails Luhn and must be rejected by the form."),
    ("negative", "Wrong IBAN in the form: DE89 3704 0044 0532 0130 01 (checksum error)."),
    ("negative", "Please reset your password before Friday; the password policy requires 12 characters."),
    ("negative", "Traffic grew 20% year over year, and conversion improved by 1.5 percentage points."),
    ("negative", "Net weight 500 g. The net result was positive; net income rose."),
    ("negative", "The meeting is at 12:30:45 UTC in building 7, room 1204, ZIP 90210."),
    ("negative", "Dimensions 120 x 80 x 45 cm, weight 3.5 kg, 1,200 employees, founded 1998."),
    ("negative", "Invoice #100234567 dated 15/01/2024 for account 00123456."),
    ("negative", "Bearer of bad news: the bearer bonds were never found."),
    ("negative", "We watched an exclusive interview with the CEO and an exclusive preview of the product."),
    ("negative", "Use std::vector and a::b namespaces; the ratio was 3:2:1."),
    ("negative", "Call extension 4521 internally, or dial 0 for reception."),
    ("negative", "The token: a unit of text. The secret: patience. The password: required."),
    ("negative", "ISO 9001:2015 certified since 2012; batch 2023-11-07-A; lot 77812."),
    ("negative", "Route 66, Highway 101 and Interstate 405 were closed for 3 days."),
    ("negative", "Scores: 98.6, 101.3, 99.9; temperatures 21.5 °C; pH 7.4."),
    ("negative", "The API returns 429 after 100 requests per minute; retry after 60 seconds."),
    ("negative", "Patch 10.0.19045 build of Windows and Chrome 124.0.6367.91 are supported."),
    ("negative", "Reference numbers: 2024001234567, 9780306406157 (ISBN), 123-45-678."),
    ("negative", "The model has 7 billion parameters and a 128k context window."),
    ("negative", "We sold 500 units in week 12 and 750 units in week 13."),
    ("negative", "Credit card payments accepted. Never send your card number or CVV by email."),
    ("negative", "Password managers like Bitwarden store your passwords securely."),
    ("negative", "Copy the key from the dashboard and paste it into the api_key field."),
    ("negative", "Our phone lines are open Monday to Friday, 9:00-17:30."),
    ("negative", "Ranks: 1st of 250 in 2023; 3rd of 240 in 2022; top 1% overall."),
    ("negative", "Coordinates 52.5200, 13.4050; elevation 34 m."),
    ("negative", "The discount code is not valid on sale items. Margins are confidential."),
    ("negative", "Rows 1204-1288 of the sheet list SKUs; see column D for quantities."),
    ("negative", "Tel Aviv office opens in 2025; call center moves to Lisbon."),
    ("negative", "Replace secret=<your-secret> and token=${TOKEN} with real values at deploy time."),
    ("negative", "Serial numbers 1234 5678 9012 and 4000 1234 5678 9010 failed QA."),
    ("negative", "Build 1.0.0.1 is ready; IP whitelisting coming in version 1.4."),
    ("negative", "Set $HOME and $PATH in your shell profile; the $ sign is escaped in templates."),
]

# Templated mixes: realistic combinations of the pools above.
EMAILS = ["kim.berg@example.com", "orders@globex.example", "l.rossi@example.it", "ops-team@example.org"]
PHONES = ["(201) 555-0123", "+44 20 7946 0958", "+33 1 42 68 53 00", "212-555-0199", "+65 6123 4567"]
CARDS = ["4111 1111 1111 1111", "5555 5555 5555 4444", "2223 0031 2200 3222", "3782 822463 10005",
         "6011 1111 1111 1117", "3530-1113-3330-0000", "4000056655665556", "36227206271667",
         "6759649826438453", "4000 0000 0000 0000 006"]
IBANS = ["DE89 3704 0044 0532 0130 00", "GB33BUKB20201555555555", "IT60 X054 2811 1010 0000 0123 456",
         "SE45 5000 0000 0583 9825 7466", "NO93 8601 1117 947"]
PRICES = ["$1,250.00", "€89", "£4.75/unit", "USD 3,400", "1,200 USD", "$10-$15", "€5 to €8", "$3 per kg", "₹450"]
TERMS_ = ["net 60", "Net-30", "2/10 net 30", "MOQ 500 units", "12% rebate", "margin of 35%",
          "exclusive distributor for the EU", "exclusivity until 2027", "7% discount"]
TEMPLATES = [
    "Hi, please charge ⟦C|{card}⟧ for the order of ⟦$|{price}⟧ and confirm to ⟦E|{email}⟧.",
    "Supplier summary: price ⟦$|{price}⟧, terms ⟦T|{term}⟧, contact ⟦P|{phone}⟧.",
    "Remittance: IBAN ⟦I|{iban}⟧. Questions: ⟦E|{email}⟧ / ⟦P|{phone}⟧.",
    "Deal memo – ⟦T|{term}⟧ agreed; list ⟦$|{price}⟧. Card on file: ⟦C|{card}⟧.",
    "Note: pay ⟦$|{price}⟧ to ⟦I|{iban}⟧; agreed ⟦T|{term}⟧.",
]


def parse(marked: str) -> tuple[str, list[dict]]:
    text, spans, pos = [], [], 0
    length = 0
    for m in _MARK.finditer(marked):
        chunk = marked[pos:m.start()]
        text.append(chunk)
        length += len(chunk)
        type_, value = ALIAS.get(m.group(1), m.group(1)), m.group(2)
        spans.append({"start": length, "end": length + len(value), "type": type_})
        text.append(value)
        length += len(value)
        pos = m.end()
    text.append(marked[pos:])
    return "".join(text), spans


def build() -> list[dict]:
    rng = random.Random(20240501)
    items = list(RECORDS)
    for i in range(60):
        tpl = TEMPLATES[i % len(TEMPLATES)]
        items.append(("mixed", tpl.format(
            card=CARDS[i % len(CARDS)], price=rng.choice(PRICES), email=rng.choice(EMAILS),
            phone=rng.choice(PHONES), iban=IBANS[i % len(IBANS)], term=rng.choice(TERMS_))))
    out, counters = [], {}
    for prefix, marked in items:
        counters[prefix] = counters.get(prefix, 0) + 1
        text, spans = parse(marked)
        rec = {"id": f"{prefix}-{counters[prefix]:03d}", "text": text, "spans": spans}
        rec["terms"] = TERMS  # every record is evaluated with the same term list
        out.append(rec)
    return out


if __name__ == "__main__":
    records = build()
    with OUT.open("w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    print(f"wrote {len(records)} records to {OUT}")
