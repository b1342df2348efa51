module github.com/diskgate/gokrazy/diskgate

go 1.19
