namespace MaeMl.Data;

/// <summary>A training batch as the training loop sees it: its position in the epoch and how many samples it holds.</summary>
internal interface ITrainingBatch
{
    /// <summary>The batch's position in its epoch.</summary>
    int Index { get; }
    /// <summary>Samples in the batch (0 when every one was unreadable).</summary>
    int Count { get; }
}

/// <summary>The batches of an epoch, a pure function of (seed, epoch, batch index), so a run resumed mid-epoch sees the same ones.</summary>
internal interface IBatchSource<out TBatch> where TBatch : ITrainingBatch
{
    /// <summary>Batches in one epoch.</summary>
    int BatchesPerEpoch { get; }
    /// <summary>The batches of <paramref name="epoch"/> from <paramref name="startBatch"/> on, in order.</summary>
    IEnumerable<TBatch> Epoch(int epoch, int startBatch = 0, CancellationToken cancel = default);
    /// <summary>Samples that could not be read so far, with the reason (empty for in-memory data).</summary>
    IReadOnlyDictionary<string, string> Unreadable { get; }
}

/// <summary>A batch of rows of an in-memory dataset: the row indices and a random source for the batch's augmentation, both
/// functions of (seed, epoch, batch index).</summary>
/// <param name="Index">The batch's position in its epoch.</param>
/// <param name="Rows">Row indices into the dataset.</param>
/// <param name="Random">Seeded by (seed, epoch, batch index): flips, jitter and any other per-batch randomness.</param>
/// <param name="Prepared">What the source's <c>prepare</c> made of the rows on a background thread (decoded images of a streamed
/// set), or null for data held in memory.</param>
internal sealed record RowBatch(int Index, long[] Rows, Random Random, object? Prepared = null) : ITrainingBatch
{
    /// <inheritdoc/>
    public int Count => Rows.Length;
}

/// <summary>
/// Shuffled mini-batches of row indices over <c>count</c> rows (the dense datasets, cached features): each epoch is a seeded
/// permutation of (seed, epoch); a last partial batch is left out (drop_last) unless it is the only one. With <c>prepare</c>
/// (a streamed set) each batch's rows are decoded on background threads, <c>prefetch</c> batches ahead, as the image loader does.
/// </summary>
internal sealed class RowBatches : IBatchSource<RowBatch>
{
    readonly int count, batchSize, seed, prefetch;
    readonly bool shuffle, dropLast;
    readonly Func<long[], object>? prepare;

    /// <summary>Batches of <paramref name="batchSize"/> rows (fewer when there are fewer rows) out of <paramref name="count"/>;
    /// <paramref name="prepare"/> (thread-safe, a pure function of the rows) runs ahead on background threads. Without
    /// <paramref name="dropLast"/> (evaluation) a last partial batch is kept.</summary>
    public RowBatches(int count, int batchSize, int seed, bool shuffle = true, Func<long[], object>? prepare = null, int prefetch = 2, bool dropLast = true)
    {
        if (count <= 0) throw new ArgumentException("No training rows");
        if (batchSize <= 0) throw new ArgumentException($"batch size must be positive, got {batchSize}");
        this.count = count; this.batchSize = Math.Min(batchSize, count); this.seed = seed; this.shuffle = shuffle; this.dropLast = dropLast;
        this.prepare = prepare; this.prefetch = Math.Max(1, prefetch);
    }

    /// <summary>Rows per batch (the batch size, or the row count when that is smaller).</summary>
    public int BatchSize => batchSize;

    /// <inheritdoc/>
    public int BatchesPerEpoch => dropLast ? count / batchSize : (count + batchSize - 1) / batchSize;

    /// <inheritdoc/>
    public IReadOnlyDictionary<string, string> Unreadable { get; } = new Dictionary<string, string>();

    /// <summary>The row order of an epoch.</summary>
    public long[] Order(int epoch)
    {
        var order = new long[count];
        for (int i = 0; i < count; i++) order[i] = i;
        if (shuffle) new Random(Seeds.MixInt(seed, epoch, 0x0DE5)).Shuffle(order);
        return order;
    }

    /// <inheritdoc/>
    public IEnumerable<RowBatch> Epoch(int epoch, int startBatch = 0, CancellationToken cancel = default)
    {
        var order = Order(epoch);
        long[] Rows(int b) => order.AsSpan(b * batchSize, Math.Min(batchSize, count - b * batchSize)).ToArray();
        RowBatch Batch(int b, long[] rows, object? prepared) => new(b, rows, new Random(Seeds.MixInt(seed, epoch, b, 0xBA7C)), prepared);
        if (prepare is null)
        {
            for (int b = startBatch; b < BatchesPerEpoch; b++)
            {
                cancel.ThrowIfCancellationRequested();
                yield return Batch(b, Rows(b), null);
            }
            yield break;
        }
        var inFlight = new Queue<(int Index, long[] Rows, Task<object> Work)>();
        int next = startBatch;
        void Start() { int b = next++; var rows = Rows(b); inFlight.Enqueue((b, rows, Task.Run(() => prepare(rows), cancel))); }
        try
        {
            while (next < BatchesPerEpoch && inFlight.Count < prefetch) Start();
            while (inFlight.Count > 0)
            {
                var (b, rows, work) = inFlight.Dequeue();
                var prepared = work.GetAwaiter().GetResult();
                if (next < BatchesPerEpoch) Start();
                cancel.ThrowIfCancellationRequested();
                yield return Batch(b, rows, prepared);
            }
        }
        finally
        {
            foreach (var (_, _, work) in inFlight)   // none outlives the enumeration
                try { work.Wait(); } catch (AggregateException) { }
        }
    }
}
