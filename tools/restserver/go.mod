module sharevault.local/tools/restserver

go 1.26

require github.com/restic/rest-server v0.14.0
