"""Settings, secrets and the app's own logging: what every stage below stands on."""
