DROP TABLE notifications;
DROP TABLE api_keys;
DROP TABLE user_sessions;
DROP TABLE team_members;
DROP TABLE teams;
DROP TABLE users;
