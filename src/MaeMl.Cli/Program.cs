namespace MaeMl.Cli; static class Program { static int Main(string[] a) { return 0; } }
