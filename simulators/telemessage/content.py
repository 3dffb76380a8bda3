"""Message texts and attachment names in the languages and scripts employees write in."""

from __future__ import annotations

import random
from datetime import datetime

_SHORT = (
    "Morning, are we still on for 10:00?",
    "Sent you the deck, have a look 👀",
    "Can you call me back when you're free?",
    "Thanks!",
    "ok",
    "Running 5 min late 🚕",
    "Client wants the revised term sheet by EOD.",
    "Let's take this offline.",
    "בוקר טוב, הדוח מוכן",
    "אפשר לדבר בעוד חצי שעה?",
    "תודה רבה! 🙏",
    "שלחתי לך את המסמכים במייל",
    "הלקוח מבקש הצעת מחיר מעודכנת עד מחר",
    "صباح الخير، هل وصلت الوثائق؟",
    "سأتصل بك بعد الاجتماع",
    "شكرا جزيلا 🌹",
    "الاجتماع تأجل إلى الساعة الثالثة",
    "Привет! Созвонимся в 15:00?",
    "Документы отправил, проверь пожалуйста.",
    "Спасибо, всё получил 👍",
    "Merci, à demain !",
    "Können wir das Meeting auf Donnerstag verschieben?",
    "👍",
    "👨‍👩‍👧 weekend plans?",
    "🇮🇱🇬🇧🇺🇸 roadshow confirmed",
    "🎉🎉🎉",
    "👩🏽‍💻 on it",
    "❤️",
    "הזמנה #4521 confirmed ✅",
    "Meeting with أحمد at 14:00",
)
_PAIRS = ("EURUSD", "GBPUSD", "USDILS", "USDJPY", "EURGBP")
_TICKERS = ("TEVA", "NICE", "ESLT", "MSFT", "VOD", "SAP")
_LINES = (
    "Client agreed to the revised allocation",
    "Settlement T+2 as usual",
    "Follow-up call on Thursday",
    "Legal still reviewing the ISDA schedule",
    "הלקוח מאשר את התנאים",
    "Нужно обновить лимиты до пятницы",
    "المستندات جاهزة للتوقيع",
    "Pricing to be refreshed at the open 📊",
)
_PDF_NAMES = ("Term sheet Q4.pdf", "הצעת מחיר.pdf", "Отчёт за ноябрь.pdf",
              "KYC_passport_scan.pdf", "عرض الأسعار.pdf", "Invoice 2026-0142.pdf")
_DOCX_NAMES = ("Contrat signé.docx", "Meeting notes.docx", "סיכום פגישה.docx",
               "Draft NDA v3.docx")

# media kind -> (content type, weight, smallest size, largest size)
MEDIA_KINDS = {
    "photo": ("image/jpeg", 45, 20_000, 600_000),
    "pdf": ("application/pdf", 20, 5_000, 600_000),
    "docx": ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", 10,
             5_000, 300_000),
    "voice": ("audio/ogg", 15, 5_000, 200_000),
    "video": ("video/mp4", 10, 100_000, 600_000),
}


def message_text(rng: random.Random) -> str:
    """A chat message: short phrases, trade confirmations or a long multi-line note."""
    roll = rng.random()
    if roll < 0.1:
        bullets = "\n".join(f"- {line}" for line in rng.sample(_LINES, rng.randint(3, 6)))
        return (f"Summary of today's call:\n{bullets}\n\n{rng.choice(_SHORT)}\n"
                "Let me know if I missed anything.")
    if roll < 0.3:
        pair, amount = rng.choice(_PAIRS), rng.choice((1, 2, 5, 10, 25))
        return rng.choice((
            f"Confirm {amount}k {pair} at {rng.uniform(0.8, 1.6):.4f}?",
            f"Done. {rng.choice(('Buy', 'Sell'))} {amount}m {pair} @ {rng.uniform(0.8, 1.6):.4f}",
            f"Bid {rng.uniform(10, 400):.2f} for {amount * 100} {rng.choice(_TICKERS)}, "
            "good till 4pm",
            f"Can you check the margin call on account {rng.randrange(10**7, 10**8)}?",
        ))
    return rng.choice(_SHORT)


def caption(rng: random.Random) -> str:
    """An optional media caption: empty for about half of the media messages."""
    return rng.choice(_SHORT) if rng.random() < 0.5 else ""


def media_kind(rng: random.Random) -> str:
    return rng.choices(list(MEDIA_KINDS), [k[1] for k in MEDIA_KINDS.values()])[0]


def attachment_name(rng: random.Random, kind: str, when: datetime, n: int = 1) -> str:
    """A file name the way Telegram names saved media (`n` numbers photos of an album)."""
    if kind == "photo":
        return f"photo_{when:%Y-%m-%d_%H-%M-%S}{f' ({n})' if n > 1 else ''}.jpg"
    if kind == "pdf":
        return rng.choice(_PDF_NAMES)
    if kind == "docx":
        return rng.choice(_DOCX_NAMES)
    if kind == "voice":
        return f"audio_{rng.randint(1, 99)}@{when:%d-%m-%Y_%H-%M-%S}.ogg"
    return f"video_{when:%Y-%m-%d_%H-%M-%S}.mp4"
