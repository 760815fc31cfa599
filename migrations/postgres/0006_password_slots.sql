-- Which of the admin user's two passwords a refresh token was obtained with (1 or 2; NULL for a
-- principal's, and for tokens issued before this was recorded), so that renewing one password revokes
-- only what that password gave out.
ALTER TABLE refresh_tokens ADD COLUMN password_slot BIGINT;
