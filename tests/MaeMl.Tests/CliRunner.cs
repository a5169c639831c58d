using MaeMl.Cli;

namespace MaeMl.Tests;

/// <summary>Runs <c>maeml</c> in-process with captured output. Console redirection is process-wide: test classes that use
/// it share the "InteropCliConsole" collection so they never run at the same time.</summary>
public static class CliRunner
{
    public static (int Code, string Out, string Err) Run(params string[] args)
    {
        var (stdout, stderr) = (Console.Out, Console.Error);
        using var o = new StringWriter();
        using var e = new StringWriter();
        Console.SetOut(o);
        Console.SetError(e);
        try { return (Program.Main(args), o.ToString(), e.ToString()); }
        finally { Console.SetOut(stdout); Console.SetError(stderr); }
    }
}
