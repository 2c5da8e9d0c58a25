-- Leave room in each page so that an update which changes no indexed column (a save of data
-- keys between touches) can stay in the same page without new index entries (a HOT update).
ALTER TABLE sessionward_sessions SET (fillfactor = 80);
