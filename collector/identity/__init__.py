"""Identity: API keys and dashboard users, with their roles and tenant binding."""
