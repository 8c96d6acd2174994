"""What the user sees: hit/miss announcements, record cards and tables, miss explanations."""
