using System.Reflection;
using Microsoft.Extensions.Logging;
using Microsoft.ML;
using Microsoft.ML.Runtime;

namespace MaeMl.MLNet;

/// <summary>
/// The user's <see cref="MLContext"/> as an estimator sees it through the catalog it was created from: its seed (drawn from the
/// context's random source, so <c>new MLContext(seed: 1)</c> makes training reproducible), its log (<c>MLContext.Log</c>, plus an
/// optional <see cref="ILogger"/>) and its cancellation (<c>MLContext.CancelExecution</c>, plus an optional token).
/// ML.NET keeps a catalog's environment behind an internal interface (<c>IInternalCatalog.Environment</c>); it is read once here.
/// </summary>
internal sealed class MLNetHost
{
    readonly IHostEnvironment env;
    readonly IHost host;
    readonly ILogger? logger;
    readonly PropertyInfo? isCanceled;
    readonly string name;

    MLNetHost(IHostEnvironment env, string name, ILogger? logger)
    {
        this.env = env;
        host = env.Register(name);
        this.logger = logger;
        this.name = name;
        isCanceled = env.GetType().GetInterfaces().FirstOrDefault(i => i.Name == "ICancelable")?.GetProperty("IsCanceled");
    }

    /// <summary>The environment behind an ML.NET catalog (e.g. <c>mlContext.MulticlassClassification.Trainers</c>).</summary>
    internal static MLNetHost FromCatalog(object catalog, string name, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        var property = catalog.GetType().GetInterfaces().FirstOrDefault(i => i.Name == "IInternalCatalog")?.GetProperty("Environment");
        var env = property?.GetValue(catalog) as IHostEnvironment
                  ?? throw new NotSupportedException($"Cannot read the MLContext behind {catalog.GetType().Name} (ML.NET {typeof(MLContext).Assembly.GetName().Version})");
        return new MLNetHost(env, name, logger);
    }

    /// <summary>A seed drawn from the context's random source (deterministic when the <see cref="MLContext"/> has a seed).</summary>
    internal int NextSeed() => host.Rand.Next();

    /// <summary>A context for building ML.NET's own transformers with a seed from the user's context; its log is forwarded.</summary>
    internal MLContext NewContext(int seed)
    {
        var ml = new MLContext(seed);
        ml.Log += (_, e) => { if (e.Kind is ChannelMessageKind.Warning or ChannelMessageKind.Error) Log(e.Message, LogLevel.Warning); };
        return ml;
    }

    /// <summary>True once <c>MLContext.CancelExecution()</c> was called on the user's context.</summary>
    internal bool IsCanceled => isCanceled?.GetValue(env) is true;

    /// <summary>A token that is cancelled when the user's context is cancelled (polled every 100 ms) or <paramref name="also"/> is.</summary>
    internal Cancellation Watch(CancellationToken also) => new(this, also);

    internal sealed class Cancellation : IDisposable
    {
        readonly CancellationTokenSource source;
        readonly Timer timer;

        internal Cancellation(MLNetHost host, CancellationToken also)
        {
            source = CancellationTokenSource.CreateLinkedTokenSource(also);
            timer = new Timer(_ => { if (host.IsCanceled) try { source.Cancel(); } catch (ObjectDisposedException) { } }, null, 0, 100);
        }

        internal CancellationToken Token => source.Token;

        public void Dispose()
        {
            timer.Dispose();
            source.Dispose();
        }
    }

    /// <summary>Writes a progress line to the user's <c>MLContext.Log</c> and logger.</summary>
    internal void Log(string message, LogLevel level = LogLevel.Information)
    {
        using (var channel = host.Start(name))
        {
            if (level >= LogLevel.Warning) channel.Warning(MessageSensitivity.None, message);
            else channel.Info(MessageSensitivity.None, message);
        }
        logger?.Log(level, "{Message}", message);
    }
}
