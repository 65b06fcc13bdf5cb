DROP TABLE notifications;
DROP TABLE api_keys;
DROP TABLE user_sessions;
DROP TABLE team_members;
DROP TABLE teams;
DROP TABLE users;
DROP FUNCTION flowstore_refuse_change();
DROP FUNCTION flowstore_touch_updated_at();
