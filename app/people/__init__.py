"""The firm's people: alliance managers, finance officers, admins and auditors who sign in to the console, with a
local account (argon2id password and TOTP) or the firm's single sign-on, and their console sessions."""
