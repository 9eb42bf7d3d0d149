"""CRM edges: reading extracts, writing scores back, and the synthetic CRM world."""
