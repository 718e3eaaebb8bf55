DROP INDEX groups_search_public;
