"""Discord adapters: mutations with retries, cards and DMs, interaction replies. No rules live here."""
