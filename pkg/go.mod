module github.com/streamdet/streamdet/pkg

go 1.26.8
